#!/usr/bin/env bash
# test/sanitize.sh: the core's C unit tests (test/unit/*.c with src/nn/*.c)
# built with AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer
# into build/nn_test_asan (test/nn_test is left alone), then run.
#
#   test/sanitize.sh [filter]      filter: run only cases whose name contains it
#
# Exits 0 only when the build succeeds, every test passes and no sanitizer
# reported anything; the last line is a one-line summary either way.
# Environment: SAN_CC (default clang-14, else clang, else gcc).
set -u

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
OUT="build/nn_test_asan"
LOG="build/nn_test_asan.log"
SUPP="test/lsan.supp"
mkdir -p build

CC="${SAN_CC:-}"
if [ -z "$CC" ]; then
	for c in clang-14 clang gcc; do
		if command -v "$c" >/dev/null 2>&1; then CC="$c"; break; fi
	done
fi

WARN="-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare"
# ONNX's generated messages (the Makefile makes them from Debian's onnx.proto)
make -s build/gen/onnx/onnx.pb-c.c >/dev/null
echo "sanitize: building $OUT with $CC -fsanitize=address,undefined"
if ! $CC -std=gnu11 -O1 -g -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all $WARN \
	-Isrc/nn -Ibuild/gen -Itest/unit -o "$OUT" $(ls test/unit/*.c | sort) $(ls src/nn/*.c | sort) \
	build/gen/onnx/onnx.pb-c.c -lopenblas -lprotobuf-c -lpng -ljpeg -lz -lm; then
	echo "sanitize: FAILED (build error)"
	exit 1
fi

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
if [ -f "$SUPP" ]; then
	export LSAN_OPTIONS="suppressions=$ROOT/$SUPP:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi

echo "sanitize: running $OUT ${1:-} (log $LOG)"
start=$(date +%s)
"./$OUT" "$@" >"$LOG" 2>&1
rc=$?
secs=$(($(date +%s) - start))

reports=$(grep -cE '^(==[0-9]+==ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer))|runtime error:' "$LOG")
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG" | tail -1)
grep -E '^not ok' "$LOG" | head -20
if [ "$reports" -gt 0 ]; then
	echo "--- sanitizer output ---"
	grep -E -A40 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$LOG" | head -120
fi

if [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ] && [ -n "$summary" ]; then
	echo "sanitize: ok: $summary, no sanitizer reports (${secs}s)"
	exit 0
fi
echo "sanitize: FAILED: ${summary:-no test summary (the run stopped early)}, $reports sanitizer report(s), exit $rc (${secs}s, log $LOG)"
exit 1
