#!/usr/bin/env bash
# test.sh (make test): every test suite of mlcnn, in order
#   1. setup (apt packages, only when missing), build, install
#   2. the C unit tests of the core (test/nn_test), then again under
#      ASan/UBSan/LeakSanitizer (test/sanitize.sh, counted as one check)
#   3. test data (build/testdata: synthetic IDX set, malformed files, a FIFO, the photographs,
#      and the forged hostile models of test/forge)
#   4. the embedded cluster (scripts/db.sh), or the server PGHOST/PGPORT name
#   5. pg_regress (make installcheck: sql/*.sql against expected/*.out)
#   6. pgTAP (pg_prove over test/pgtap/*.sql in the database mlcnn_test)
#   7. test/distributed/fdw.sh (train_distributed, evaluate and compute_gradients
#      across two shard clusters through postgres_fdw)
#   8. test/onnx/export.py (model_to_onnx through onnx's checker and OpenCV)
#   9. test/images/decode.py (decode_image against Pillow's and OpenCV's files)
#  10. test/preload.sh (a second cluster with shared_preload_libraries = 'mlcnn')
# Each suite's output is shown; the last line is "N passed, N failed" summing
# unit assertions, pg_regress tests, pgTAP assertions and preload checks. A suite that cannot
# run at all counts as one failure. Exit status 1 when anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

PASSED=0
FAILED=0
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	SUDO=(sudo)
fi

# add passed and failed counts to the totals
count() {
	PASSED=$((PASSED + $1))
	FAILED=$((FAILED + $2))
}

banner() {
	printf '\n======== %s\n' "$*"
}

# run a command that prints TAP-style lines and a closing "N passed, N failed",
# show its output, and count it; a run that ends without that line (a crash)
# counts what it printed plus one failure. $1 names the log, the rest is the command.
run_counted() {
	local log=$LOGS/$1.log rc summary ok notok
	shift
	set +e
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	summary=$(tail -n 1 "$log")
	if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		count "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
		if [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
			count 0 1
		fi
	else
		ok=$(grep -c '^ok ' "$log" || true)
		notok=$(grep -c '^not ok ' "$log" || true)
		echo "test.sh: $* ended without its summary line (exit status $rc)"
		count "$ok" $((notok + 1))
	fi
}

# --------------------------------------------------------------- setup, build
banner "setup"
if ! bash scripts/setup.sh; then
	echo "test.sh: scripts/setup.sh failed"
	count 0 1
fi

banner "build and install the extension"
built=1
if ! make -j"$(nproc)"; then
	echo "test.sh: make failed"
	count 0 1
	built=0
elif ! "${SUDO[@]}" make install >"$LOGS/install.log" 2>&1; then
	cat "$LOGS/install.log"
	echo "test.sh: make install failed"
	count 0 1
	built=0
else
	echo "installed into $(pg_config --pkglibdir) and $(pg_config --sharedir)/extension"
fi

# ---------------------------------------------------------------- unit tests
banner "unit tests (test/nn_test)"
if make test/nn_test; then
	run_counted unit ./test/nn_test
else
	echo "test.sh: test/nn_test does not build"
	count 0 1
fi

# ------------------------------------------------------------- sanitizers
# the same unit tests built with AddressSanitizer, UndefinedBehaviorSanitizer
# and LeakSanitizer: one check, passed only with no failure and no report
banner "unit tests under ASan/UBSan/LSan (test/sanitize.sh)"
if bash test/sanitize.sh; then
	count 1 0
else
	count 0 1
fi

# ----------------------------------------------------------------- test data
banner "test data (build/testdata)"
if make data/idxtool >"$LOGS/idxtool.log" 2>&1 &&
	make test/forge >>"$LOGS/idxtool.log" 2>&1 &&
	rm -rf build/testdata &&
	data/idxtool synth build/testdata/synth 2000 500 1 &&
	data/idxtool bad build/testdata/bad &&
	mkfifo build/testdata/fifo &&
	test/forge build/testdata/forged &&
	cp -R test/images/photos build/testdata/photos; then
	# fifo: a named pipe nobody writes to, which load_idx must refuse at once
	# (test/pgtap/load_idx.sql). The server may run as another OS user:
	# everything readable
	chmod a+rx build
	chmod -R a+rX build/testdata
	ls build/testdata/synth build/testdata/bad build/testdata/forged
else
	cat "$LOGS/idxtool.log"
	echo "test.sh: could not build data/idxtool or test/forge, or write the test data"
	count 0 1
fi

# ----------------------------------------------------------------- database
banner "database"
db_ok=1
if bash scripts/db.sh start; then
	eval "$(bash scripts/db.sh env)"
	export PGHOST PGPORT PGUSER PGDATABASE
	if ! psql -X -q -d postgres -c 'SELECT 1' >/dev/null; then
		echo "test.sh: cannot connect to the server"
		db_ok=0
	fi
else
	db_ok=0
fi
if [ "$db_ok" -eq 1 ]; then
	# an existing server: give it the test data link when we can
	datadir=$(psql -X -At -d postgres -c 'SHOW data_directory' 2>/dev/null || true)
	if [ -n "$datadir" ] && [ -d "$datadir" ] && [ ! -L "$datadir/mlcnn_test_data" ] &&
		[ ! -e "$datadir/mlcnn_test_data" ] && [ -w "$datadir" ]; then
		ln -sfn "$ROOT/build/testdata" "$datadir/mlcnn_test_data"
	fi
	if [ -n "$datadir" ] && [ -d "$datadir" ] && [ ! -L "$datadir/mlcnn_test_data" ] &&
		[ ! -e "$datadir/mlcnn_test_data" ]; then
		echo "test.sh: note: the SQL tests read mlcnn_test_data/ in the server's data directory;"
		echo "test.sh: link it there: ln -s $ROOT/build/testdata $datadir/mlcnn_test_data"
	fi
fi

# ---------------------------------------------------------------- pg_regress
banner "pg_regress (make installcheck)"
if [ "$db_ok" -eq 1 ] && [ "$built" -eq 1 ]; then
	rm -f regression.diffs regression.out
	set +e
	make installcheck 2>&1 | tee "$LOGS/installcheck.log"
	rc=${PIPESTATUS[0]}
	set -e
	ok=$(grep -Ec '^(test | +)?[a-z0-9_]+ +\.\.\. ok' "$LOGS/installcheck.log" || true)
	bad=$(grep -Ec '\.\.\. (FAILED|failed)' "$LOGS/installcheck.log" || true)
	count "$ok" "$bad"
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		echo "test.sh: make installcheck failed without a failing test"
		count 0 1
	fi
	if [ -f regression.diffs ] && [ -s regression.diffs ]; then
		banner "regression.diffs"
		cat regression.diffs
	fi
else
	echo "test.sh: skipped: no server or no installed extension"
	count 0 1
fi

# ---------------------------------------------------------------------- pgTAP
banner "pgTAP (pg_prove test/pgtap/*.sql in database mlcnn_test)"
if [ "$db_ok" -eq 1 ] && [ "$built" -eq 1 ] &&
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS mlcnn_test' -c 'CREATE DATABASE mlcnn_test' &&
	psql -X -q -v ON_ERROR_STOP=1 -d mlcnn_test \
		-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION mlcnn'; then
	# a load_idx that blocked on the FIFO of the test data would hang in
	# open() or read(), where neither a cancel nor statement_timeout reaches
	# it (the server's signal handlers restart system calls): every 10 s, open
	# the FIFO's other end for a moment, so that such a call returns and its
	# test fails instead of hanging the run (it stops with this script)
	watchdog=""
	if [ -p build/testdata/fifo ]; then
		(while sleep 10 && kill -0 $$ 2>/dev/null; do exec 3<>build/testdata/fifo; exec 3>&-; done) &
		watchdog=$!
	fi
	shopt -s nullglob
	for f in test/pgtap/*.sql; do
		log="$LOGS/pgtap-$(basename "$f" .sql).log"
		set +e
		pg_prove --verbose --failures -d mlcnn_test "$f" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		set -e
		ok=$(grep -Ec '^ok [0-9]+' "$log" || true)
		notok=$(grep -Ec '^not ok [0-9]+' "$log" || true)
		planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
		planned=${planned:-0}
		missing=$((planned - ok - notok))
		[ "$missing" -gt 0 ] || missing=0
		count "$ok" $((notok + missing))
		if [ "$rc" -ne 0 ] && [ $((notok + missing)) -eq 0 ]; then
			echo "test.sh: pg_prove $f failed (exit status $rc)"
			count 0 1
		fi
	done
	shopt -u nullglob
	if [ -n "$watchdog" ]; then
		kill "$watchdog" 2>/dev/null || true
		wait "$watchdog" 2>/dev/null || true
	fi
else
	echo "test.sh: skipped: no server, no installed extension, or mlcnn_test could not be made"
	count 0 1
fi

# --------------------------------------------------------------- distributed
banner "Across servers (test/distributed/fdw.sh: two shard clusters, postgres_fdw foreign partitions)"
if [ "$db_ok" -eq 1 ] && [ "$built" -eq 1 ]; then
	MLCNN_TEST_DB=mlcnn_test run_counted distributed bash test/distributed/fdw.sh
else
	echo "test.sh: skipped: no server or no installed extension"
	count 0 1
fi

# ---------------------------------------------------------------------- onnx
banner "ONNX export and import (test/onnx/export.py: onnx's checker, OpenCV, PyTorch's files)"
if [ "$db_ok" -eq 1 ] && [ "$built" -eq 1 ]; then
	PGDATABASE=mlcnn_test run_counted onnx-export /usr/bin/python3 test/onnx/export.py
else
	echo "test.sh: skipped: no server or no installed extension"
	count 0 1
fi

# -------------------------------------------------------------------- images
banner "Images (test/images/decode.py: decode_image against Pillow's and OpenCV's files)"
if [ "$db_ok" -eq 1 ] && [ "$built" -eq 1 ]; then
	PGDATABASE=mlcnn_test run_counted images /usr/bin/python3 test/images/decode.py
else
	echo "test.sh: skipped: no server or no installed extension"
	count 0 1
fi

# ------------------------------------------------------------------- preload
banner "shared_preload_libraries (test/preload.sh, a second throwaway cluster)"
if [ "$db_ok" -eq 1 ] && [ "$built" -eq 1 ]; then
	run_counted preload bash test/preload.sh
else
	echo "test.sh: skipped: no server or no installed extension"
	count 0 1
fi

banner "summary"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
