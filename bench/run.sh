#!/usr/bin/env bash
# run.sh (make bench): mlcnn against PyTorch (and TensorFlow/Keras when it is
# importable), tiny-dnn and dlib on MNIST and Fashion-MNIST, on this machine,
# in one run.
#
#   1. setup: the base packages (scripts/setup.sh) and python3-torch,
#      python3-numpy, python3-matplotlib, and for the C++ frameworks tiny-dnn,
#      libcereal-dev, libstb-dev, libdlib-dev, g++, zlib1g-dev (apt, only when
#      missing)
#   2. build and install the extension; compile bench/tinydnn_bench.cpp and
#      bench/dlib_bench.cpp into build/bench/ (BENCH_CXXFLAGS)
#   3. the embedded cluster, in the machine's environment; a fresh database
#      mlcnn_bench
#   4. per data set: load train/test with load_idx; mlcnn trains through SQL
#      (one fresh connection, so the backend's VmHWM is this training's peak),
#      then a second connection times predictions inside the server, then
#      fresh sessions time their first prediction query; then
#      bench/opencv_bench.py, bench/torch_bench.py for PyTorch and for
#      TensorFlow, build/bench/tinydnn_bench and build/bench/dlib_bench. On
#      Fashion-MNIST, the reference comparison (mlcnn and PyTorch) again in
#      each other OpenBLAS setting of BENCH_KERNELS: "pinned" is the
#      machine's environment as it is (what the tests see; BENCH_PIN sets an
#      OPENBLAS_CORETYPE for it), "lifted" the same without OPENBLAS_CORETYPE
#      and OPENBLAS_L2_SIZE; both sides run in the same one, the cluster
#      restarted in it and restarted back (also on failure: the EXIT trap)
#   5. scaling: mlcnn, 1 epoch on 15k/30k/60k/120k rows of Fashion-MNIST;
#      model selection: tune_conv2d's grid beside successive halving;
#      profile: bench/nn_bench's per-layer table, 1 epoch, in each setting
#   6. bench/report.py writes bench/results/<dataset>.{json,md,png},
#      bench/results/scaling.{json,md,png} and bench/results/profile.{json,md};
#      raw measurements are in bench/results/raw/
#
# Knobs (environment):
#   BENCH_EPOCHS=5           epochs of every framework
#   BENCH_THREADS=2          threads of every framework for training (mlcnn
#                            "threads" option; torch.set_num_threads; tiny-dnn's
#                            OpenMP threads; dlib's OpenBLAS threads)
#   BENCH_PREDICT_THREADS    threads of every framework for the inference
#                            measurements (mlcnn.threads; torch.set_num_threads);
#                            default BENCH_THREADS
#   BENCH_TORCH_BLAS_THREADS=1  OPENBLAS_NUM_THREADS of the PyTorch/TensorFlow
#                            process (its parallelism is its own OpenMP threads;
#                            see bench/README.md)
#   BENCH_OMP_WAIT_POLICY=   OMP_WAIT_POLICY of that process (and tiny-dnn's):
#                            empty (the default) leaves the OpenMP default,
#                            spinning; "passive" is fairer on a machine that is
#                            not quiet
#   BENCH_KERNELS="pinned lifted"  the OpenBLAS settings of the Fashion-MNIST
#                            reference comparison (mlcnn and PyTorch); the
#                            machine's own setting is always measured, the
#                            others in addition; when pinned and lifted are the
#                            same (no pin set) it runs once
#   BENCH_PIN=               an OPENBLAS_CORETYPE for the pinned setting (e.g.
#                            Haswell), replacing the machine's: a way to run
#                            both settings on a machine that sets no pin
#   BENCH_DATASETS="mnist fashion-mnist"
#   BENCH_TRAIN_ROWS=0       keep the first N training rows (0: all; smoke tests)
#   BENCH_SCALING=1          0 skips the scaling runs
#   BENCH_RESNET=1           0 skips the ResNet-style network (batch norm,
#                            residual blocks) against PyTorch on Fashion-MNIST
#   BENCH_RESNET_EPOCHS=3    its epochs
#   BENCH_SCALING_ROWS="15000 30000 60000 120000"
#   BENCH_TUNE=1             0 skips the model-selection runs: tune_conv2d's grid
#                            and successive halving over 3 learning rates x 2
#                            batch sizes of the reference CNN on the MNIST subset
#                            (../shared/data/mnist; Fashion-MNIST's first 10,000
#                            rows when it is missing)
#   BENCH_TUNE_EPOCHS=4      the epochs of a grid trial (halving's most)
#   BENCH_TUNE_DATA=mnist    its data set (fashion-mnist for the other one)
#   BENCH_DIST=1             0 skips the distributed runs: train_distributed over
#                            two shard clusters (scripts/db.sh shards-start) of
#                            30,000 Fashion-MNIST rows each, through postgres_fdw,
#                            against train_conv2d over the 60,000 on one server;
#                            each shard trains on 1 thread, the one server on
#                            BENCH_THREADS (the same cores in all)
#   BENCH_DIST_ROUNDS=3      its rounds of 1 epoch (the single server's epochs)
#   BENCH_TINYDNN=1          0 skips tiny-dnn (its rows say so)
#   BENCH_TINYDNN_ROWS=3000  its training rows (0: all, as the others; capped by
#                            BENCH_TRAIN_ROWS): tiny-dnn trains at about 60-100
#                            images/s here, a 60,000-row epoch in 10-17 minutes
#   BENCH_DLIB=1             0 skips dlib
#   BENCH_DLIB_ROWS=0        its training rows (0: all; capped by BENCH_TRAIN_ROWS)
#   BENCH_CXXFLAGS="-O3 -march=native"  the C++ frameworks' compiler flags
#   BENCH_PROFILE=1          0 skips the per-layer profile (bench/nn_bench)
#   BENCH_PROFILE_ROWS=60000 its rows (capped by BENCH_TRAIN_ROWS)
#   BENCH_REPEATS=5          timed runs of each prediction measurement (median),
#                            and fresh sessions of the first-query measurement
#   BENCH_BUILD=1            0 skips make && make install
#   BENCH_OUT=bench/results  where the results go
# Smoke run: BENCH_EPOCHS=1 BENCH_TRAIN_ROWS=2000 BENCH_SCALING=0 BENCH_RESNET=0 make bench
# The ResNet comparison alone: BENCH_DATASETS= BENCH_SCALING=0 make bench
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

EPOCHS=${BENCH_EPOCHS:-5}
THREADS=${BENCH_THREADS:-2}
DATASETS=${BENCH_DATASETS-mnist fashion-mnist}
TRAIN_ROWS=${BENCH_TRAIN_ROWS:-0}
SCALING=${BENCH_SCALING:-1}
RESNET=${BENCH_RESNET:-1}
RESNET_EPOCHS=${BENCH_RESNET_EPOCHS:-3}
TUNE=${BENCH_TUNE:-1}
TUNE_EPOCHS=${BENCH_TUNE_EPOCHS:-4}
TUNE_DATA=${BENCH_TUNE_DATA:-mnist}
DIST=${BENCH_DIST:-1}
DIST_ROUNDS=${BENCH_DIST_ROUNDS:-3}
SCALING_ROWS=${BENCH_SCALING_ROWS:-15000 30000 60000 120000}
REPEATS=${BENCH_REPEATS:-5}
PREDICT_THREADS=${BENCH_PREDICT_THREADS:-$THREADS}
TORCH_BLAS_THREADS=${BENCH_TORCH_BLAS_THREADS:-1}
OMP_WAIT=${BENCH_OMP_WAIT_POLICY-}
KERNELS=${BENCH_KERNELS-pinned lifted}
PIN=${BENCH_PIN-}
TINYDNN=${BENCH_TINYDNN:-1}
TINYDNN_ROWS=${BENCH_TINYDNN_ROWS:-3000}
DLIB=${BENCH_DLIB:-1}
DLIB_ROWS=${BENCH_DLIB_ROWS:-0}
CXXFLAGS_BENCH=${BENCH_CXXFLAGS:--O3 -march=native}
PROFILE=${BENCH_PROFILE:-1}
PROFILE_ROWS=${BENCH_PROFILE_ROWS:-60000}
BUILD=${BENCH_BUILD:-1}
OUT=${BENCH_OUT:-$ROOT/bench/results}
PY=/usr/bin/python3
DB=mlcnn_bench
CXX_DIR=$ROOT/build/bench      # the C++ frameworks' programs (git-ignored)
COMPARE_DS=fashion-mnist       # the data set of the reference comparison in each OpenBLAS setting
SPEC='conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(10)'
RESNET_SPEC='conv(16,3,1,same) batchnorm relu residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu maxpool(2) conv(32,3,1,same) batchnorm relu residual(conv(32,3,1,same) batchnorm relu conv(32,3,1,same) batchnorm) relu maxpool(2) globalavgpool dense(10)'

die() {
	echo "bench: $*" >&2
	exit 1
}

step() {
	printf '\n==> %s\n' "$*"
}

# every knob that must be a number is one
for kv in "BENCH_EPOCHS=$EPOCHS" "BENCH_THREADS=$THREADS" "BENCH_TRAIN_ROWS=$TRAIN_ROWS" \
	"BENCH_REPEATS=$REPEATS" "BENCH_SCALING=$SCALING" "BENCH_BUILD=$BUILD" \
	"BENCH_PREDICT_THREADS=$PREDICT_THREADS" "BENCH_TORCH_BLAS_THREADS=$TORCH_BLAS_THREADS" \
	"BENCH_TINYDNN=$TINYDNN" "BENCH_TINYDNN_ROWS=$TINYDNN_ROWS" "BENCH_DLIB=$DLIB" "BENCH_DLIB_ROWS=$DLIB_ROWS" \
	"BENCH_PROFILE=$PROFILE" "BENCH_PROFILE_ROWS=$PROFILE_ROWS"; do
	[[ ${kv#*=} =~ ^[0-9]+$ ]] || die "${kv%%=*} must be a whole number, not '${kv#*=}'"
done
for n in $SCALING_ROWS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_SCALING_ROWS must be positive whole numbers, not '$n'"
done
[ "$EPOCHS" -ge 1 ] || die "BENCH_EPOCHS must be at least 1"
[ "$THREADS" -ge 1 ] || die "BENCH_THREADS must be at least 1"
[ "$PREDICT_THREADS" -ge 1 ] || die "BENCH_PREDICT_THREADS must be at least 1"
[ "$TORCH_BLAS_THREADS" -ge 1 ] || die "BENCH_TORCH_BLAS_THREADS must be at least 1"
case "$OMP_WAIT" in
	"" | active | passive | ACTIVE | PASSIVE) ;;
	*) die "BENCH_OMP_WAIT_POLICY must be passive, active or empty, not '$OMP_WAIT'" ;;
esac
[ "$REPEATS" -ge 3 ] || die "BENCH_REPEATS must be at least 3 (medians of at least 3 runs)"
for ds in $DATASETS; do
	case "$ds" in
		mnist | fashion-mnist) ;;
		*) die "BENCH_DATASETS: unknown data set '$ds' (mnist, fashion-mnist)" ;;
	esac
done
[ -n "$KERNELS" ] || die "BENCH_KERNELS must name at least one setting (pinned, lifted)"
for k in $KERNELS; do
	case "$k" in
		pinned | lifted) ;;
		*) die "BENCH_KERNELS: unknown setting '$k' (pinned, lifted)" ;;
	esac
done
[[ $PIN =~ ^[A-Za-z0-9_]*$ ]] || die "BENCH_PIN must be an OpenBLAS core name such as Haswell, not '$PIN'"
[ "$PROFILE_ROWS" -ge 64 ] || die "BENCH_PROFILE_ROWS must be at least 64 (one batch)"
read -ra CXXFLAGS_ARR <<<"$CXXFLAGS_BENCH"

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
RESTARTED=0

# ---------------------------------------------------------------- OpenBLAS settings

# setting_args NAME: SET_ARGS = the env(1) arguments giving setting NAME's
# OpenBLAS variables: machine (the environment as it is), pinned (as it is,
# with OPENBLAS_CORETYPE=BENCH_PIN when that is set), lifted (without
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE)
setting_args() {
	case "$1" in
		machine) SET_ARGS=() ;;
		pinned)
			SET_ARGS=()
			[ -z "$PIN" ] || SET_ARGS=(OPENBLAS_CORETYPE="$PIN")
			;;
		lifted) SET_ARGS=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE) ;;
		*) die "unknown OpenBLAS setting '$1'" ;;
	esac
}

# env_sig NAME: setting NAME's OpenBLAS variables as "CORETYPE|L2_SIZE"
# ("(unset)" for an unset one)
env_sig() {
	setting_args "$1"
	env "${SET_ARGS[@]}" bash -c 'printf "%s|%s" "${OPENBLAS_CORETYPE-(unset)}" "${OPENBLAS_L2_SIZE-(unset)}"'
}

# sig_json SIG: a "CORETYPE|L2_SIZE" signature as a JSON object (null: unset)
sig_json() {
	local ct=${1%%|*} l2=${1#*|}
	[ "$ct" = '(unset)' ] && ct=null || ct="\"$ct\""
	[ "$l2" = '(unset)' ] && l2=null || l2="\"$l2\""
	printf '{"OPENBLAS_CORETYPE": %s, "OPENBLAS_L2_SIZE": %s}' "$ct" "$l2"
}

# postmaster_pid: the embedded cluster's postmaster pid, or nothing
postmaster_pid() {
	sed -n 1p "$ROOT/.pgdata/data/postmaster.pid" 2>/dev/null || true
}

# server_sig: the running server's OpenBLAS variables, "CORETYPE|L2_SIZE" as
# env_sig gives them, from the postmaster's /proc/<pid>/environ (its backends
# inherit it); "?" when there is no readable postmaster
server_sig() {
	local pid ct='(unset)' l2='(unset)' kv
	pid=$(postmaster_pid)
	if [ -z "$pid" ] || [ ! -r "/proc/$pid/environ" ]; then
		echo '?'
		return 0
	fi
	while IFS= read -r -d '' kv; do
		case "$kv" in
			OPENBLAS_CORETYPE=*) ct=${kv#*=} ;;
			OPENBLAS_L2_SIZE=*) l2=${kv#*=} ;;
		esac
	done <"/proc/$pid/environ"
	printf '%s|%s' "$ct" "$l2"
}

# server_in NAME: the embedded cluster running in setting NAME's environment:
# stopped and started again under it when it is not (the EXIT trap puts it
# back in the machine's)
server_in() {
	local want
	want=$(env_sig "$1")
	[ "$(server_sig)" = "$want" ] && return 0
	echo "bench: restarting the embedded cluster in the $1 setting (OPENBLAS_CORETYPE|OPENBLAS_L2_SIZE: $want)"
	RESTARTED=1
	bash scripts/db.sh stop >/dev/null
	setting_args "$1"
	env "${SET_ARGS[@]}" bash scripts/db.sh start >/dev/null
	[ "$(server_sig)" = "$want" ] ||
		die "the restarted server's OpenBLAS variables are $(server_sig), not $want"
}

# restore_server (the EXIT trap): when this run restarted the embedded
# cluster, make sure it runs in the machine's environment again, also after
# a failure or an interrupt; the exit status stays the run's
restore_server() {
	local rc=$?
	if [ "${RESTARTED:-0}" = 1 ] && [ "$(server_sig)" != "$(env_sig machine)" ]; then
		echo "bench: restarting the embedded cluster in the machine's environment"
		bash scripts/db.sh stop >/dev/null 2>&1 || true
		bash scripts/db.sh start >/dev/null ||
			echo "bench: the embedded cluster did not start again: run bash scripts/db.sh start" >&2
	fi
	return "$rc"
}

# kernel_facts NAME: raw/kernel-NAME.json, setting NAME's OpenBLAS kernel
# (report.py kernel run in its environment: what the module's OpenBLAS picks
# there) and the running server's OPENBLAS_ variables
kernel_facts() {
	local pid
	pid=$(postmaster_pid)
	setting_args "$1"
	env "${SET_ARGS[@]}" "$PY" bench/report.py kernel --name "$1" --out "$RAW/kernel-$1.json" \
		--module "$MODULE" --postmaster-pid "${pid:-0}"
}

# ---------------------------------------------------------------- runners

# pyrun ARGS...: the Python of a framework in the current OpenBLAS setting
# (CUR_SETTING; the machine's unless the reference comparison says
# otherwise), with its own T OpenMP threads and OpenBLAS (torch's BLAS, the
# pthread build) single-threaded so that it does not oversubscribe the cores
# (see bench/README.md)
pyrun() {
	local wait=()
	[ -n "$OMP_WAIT" ] && wait=(OMP_WAIT_POLICY="$OMP_WAIT")
	setting_args "$CUR_SETTING"
	env -u OMP_WAIT_POLICY "${SET_ARGS[@]}" \
		OPENBLAS_NUM_THREADS="$TORCH_BLAS_THREADS" OMP_NUM_THREADS="$THREADS" "${wait[@]}" \
		"$PY" "$@"
}

# mlcnn_run PREFIX: mlcnn on tables train and test: trains in a fresh
# connection (raw/PREFIX-mlcnn-train.json), times the predictions and
# evaluates the test set in a second one (-infer.json), then times the first
# prediction query of fresh sessions (-first.json)
mlcnn_run() {
	echo "mlcnn: training (fresh connection)"
	"${PSQL[@]}" -v opts="$opts" >"$RAW/$1-mlcnn-train.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SET mlcnn.progress = on;
SELECT bench.train('train', :'opts'::jsonb, true);
SQL
	echo "mlcnn: predictions and test accuracy (timed in the server)"
	"${PSQL[@]}" -v threads="$PREDICT_THREADS" -v repeats="$REPEATS" >"$RAW/$1-mlcnn-infer.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SET mlcnn.threads = :threads;
SELECT jsonb_build_object(
  'threads', current_setting('mlcnn.threads')::int,
  'predict100_single_ms', bench.time_ms(
    'SELECT predict(m.model, t.pixels) FROM (SELECT pixels FROM test ORDER BY id LIMIT 100) t, models m',
    :repeats),
  'predict100_batch_ms', bench.time_ms(
    'SELECT evaluate(m.model, t.pixels, t.label) FROM (SELECT pixels, label FROM test ORDER BY id LIMIT 100) t, models m',
    :repeats),
  'predict100_agree', (SELECT count(*) FROM (SELECT predict(m.model, t.pixels) = t.label AS ok
      FROM (SELECT pixels, label FROM test ORDER BY id LIMIT 100) t, models m) p WHERE ok),
  'evaluate', bench.evaluate_test());
SQL
	echo "mlcnn: the first prediction query of $REPEATS fresh sessions"
	first_query "$1"
}

# first_query PREFIX: the first statement of REPEATS fresh psql connections
# (after one untimed one), a one-row prediction, timed by psql's \timing in
# the client, and the whole psql command timed by the shell:
# raw/PREFIX-mlcnn-first.json
first_query() {
	local q='SELECT predict(m.model, t.pixels) FROM (SELECT pixels FROM test ORDER BY id LIMIT 1) t, models m'
	local ms=() wall=() out t0 t1 v i
	"${PSQL[@]}" -c "$q" >/dev/null
	for ((i = 0; i < REPEATS; i++)); do
		t0=$(date +%s%N)
		out=$("${PSQL[@]}" -c '\timing on' -c "$q")
		t1=$(date +%s%N)
		v=$(printf '%s\n' "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)
		[ -n "$v" ] || die "psql printed no \\timing line for the first query: $out"
		ms+=("$v")
		wall+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')")
	done
	printf '{"query": "%s", "query_ms": [%s], "psql_wall_ms": [%s], "how": "%s"}\n' "$q" \
		"$(IFS=,; echo "${ms[*]}")" "$(IFS=,; echo "${wall[*]}")" \
		"the first statement of a fresh psql connection, timed by psql's \\\\timing (client round trip); psql_wall_ms: the whole psql -c command, timed by the shell; one untimed session first" \
		>"$RAW/$1-mlcnn-first.json"
}

# not_run FILE NAME REASON: a framework's JSON saying that it did not run, and why
not_run() {
	"$PY" -c 'import json, sys; json.dump({"framework": sys.argv[2], "installed": False, "reason": sys.argv[3]}, open(sys.argv[1], "w"))' \
		"$1" "$2" "$3"
	echo "bench: $2: $3"
}

# cap_rows A B: the smaller of two row counts, 0 meaning all rows
cap_rows() {
	if [ "$1" -eq 0 ]; then
		echo "$2"
	elif [ "$2" -eq 0 ] || [ "$1" -lt "$2" ]; then
		echo "$1"
	else
		echo "$2"
	fi
}

# cxx_build NAME: build/bench/NAME_bench from bench/NAME_bench.cpp with
# BENCH_CXXFLAGS, unless it is newer than its sources and was built by the
# same command; false (the compiler's words in build/bench/NAME_bench.err)
# when it does not compile
cxx_build() {
	local name=$1 src=bench/$1_bench.cpp bin=$CXX_DIR/$1_bench cmd
	mkdir -p "$CXX_DIR"
	cmd=(g++ -std=c++14 "${CXXFLAGS_ARR[@]}" "-DBENCH_CXXFLAGS=\"$CXXFLAGS_BENCH\"")
	case "$name" in
		tinydnn)
			# Debian's tiny-dnn lacks its third_party folder: stb from libstb-dev
			mkdir -p "$CXX_DIR/include/third_party"
			ln -sfn /usr/include/stb "$CXX_DIR/include/third_party/stb"
			cmd+=(-fopenmp -DCNN_USE_OMP -DCNN_NO_SERIALIZATION -I"$CXX_DIR/include"
				"-DBENCH_LIB_VERSION=\"$(dpkg-query -W -f='${Version}' tiny-dnn 2>/dev/null || echo '?')\"")
			grep -qw avx /proc/cpuinfo && cmd+=(-DCNN_USE_AVX)
			cmd+=("$src" -o "$bin" -lz)
			;;
		dlib) cmd+=("$src" -o "$bin" -ldlib -lz -lpthread) ;;
	esac
	if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt bench/cxx_bench.h ] &&
		[ "$(cat "$bin.cmd" 2>/dev/null)" = "${cmd[*]}" ]; then
		return 0
	fi
	rm -f "$bin" "$bin.cmd"
	echo "compiling $name: ${cmd[*]}"
	if ! "${cmd[@]}" 2>"$bin.err"; then
		grep -m 3 'error' "$bin.err" | sed 's/^/bench:   /' >&2 || true
		return 1
	fi
	printf '%s\n' "${cmd[*]}" >"$bin.cmd"
	rm -f "$bin.err"
}

# cxx_run NAME DIR PREFIX ROWS: the C++ framework NAME on data DIR (the first
# ROWS training rows, 0 all) in the machine's environment with T threads
# (tiny-dnn: its OpenMP threads; dlib: OpenBLAS's): raw/PREFIX-NAME.json, or
# one that says why it did not run
cxx_run() {
	local name=$1 dir=$2 out=$RAW/$3-$1.json rows=$4 bin=$CXX_DIR/$1_bench rc thr=()
	if [ ! -x "$bin" ]; then
		if [ -f "$bin.err" ]; then
			not_run "$out" "$name" "does not compile: $(grep -m 1 'error' "$bin.err" | cut -c1-300)"
		else
			not_run "$out" "$name" "not built"
		fi
		return 0
	fi
	case "$name" in
		tinydnn)
			thr=(OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS=1)
			[ -n "$OMP_WAIT" ] && thr+=(OMP_WAIT_POLICY="$OMP_WAIT")
			;;
		dlib) thr=(OPENBLAS_NUM_THREADS="$THREADS") ;;
	esac
	echo "$name: $rows training rows (0: all), $EPOCHS epoch(s), $THREADS thread(s)"
	set +e
	env -u OMP_WAIT_POLICY "${thr[@]}" "$bin" --data "$dir" --out "$out" --epochs "$EPOCHS" \
		--threads "$THREADS" --predict-threads "$PREDICT_THREADS" --train-rows "$rows" \
		--repeats "$REPEATS" 2>&1 | tee "$out.log"
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" -ne 0 ]; then
		if [ "$rc" -gt 128 ]; then
			not_run "$out" "$name" "crashed: signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null)); the end of its output: $(tail -n 2 "$out.log" | tr '\n' ' ' | cut -c1-300)"
		else
			not_run "$out" "$name" "failed (exit status $rc): $(tail -n 2 "$out.log" | tr '\n' ' ' | cut -c1-300)"
		fi
		return 0
	fi
	rm -f "$out.log"
}

# the whole run, in a function so that bash has read all of it before it starts
main() {
	step "setup: packages, build, install"
	bash scripts/setup.sh
	missing=()
	for p in python3-torch python3-numpy python3-matplotlib; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "bench: installing ${missing[*]}"
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" >/dev/null
	fi
	"$PY" -c 'import torch, numpy, matplotlib' ||
		die "$PY cannot import torch, numpy and matplotlib (Debian: python3-torch python3-numpy python3-matplotlib)"
	# the C++ frameworks' packages: Debian's tiny-dnn needs cereal and stb
	# besides (it does not depend on them); a failed install leaves their rows
	# saying why
	cxx_pkgs=()
	[ "$TINYDNN" = 1 ] && cxx_pkgs+=(tiny-dnn libcereal-dev libstb-dev)
	[ "$DLIB" = 1 ] && cxx_pkgs+=(libdlib-dev)
	[ ${#cxx_pkgs[@]} -gt 0 ] && cxx_pkgs+=(g++ zlib1g-dev)
	missing=()
	for p in "${cxx_pkgs[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "bench: installing ${missing[*]}"
		{ "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends "${missing[@]}" >/dev/null; } ||
			echo "bench: could not install ${missing[*]}; the C++ frameworks that need them will say so"
	fi
	if [ "$BUILD" = 1 ]; then
		make -s -j"$(nproc)" >/dev/null
		"${SUDO[@]}" make -s install >/dev/null
	fi
	MODULE=$(pg_config --pkglibdir)/mlcnn.so
	for fwk in tinydnn dlib; do
		on=$TINYDNN
		[ "$fwk" = dlib ] && on=$DLIB
		[ "$on" = 1 ] || continue
		cxx_build "$fwk" || echo "bench: $fwk does not compile (build/bench/${fwk}_bench.err); its rows say so"
	done

	step "the embedded cluster, database $DB"
	bash scripts/db.sh start
	eval "$(bash scripts/db.sh env)"
	export PGHOST PGPORT PGUSER PGDATABASE
	# the OpenBLAS settings: the machine's, pinned and lifted; the reference
	# comparison runs in the machine's and in each other one of BENCH_KERNELS
	EXTERNAL=false
	case "$(bash scripts/db.sh status 2>&1 || true)" in
		*"existing server"*) EXTERNAL=true ;;
	esac
	sig_machine=$(env_sig machine)
	sig_pinned=$(env_sig pinned)
	sig_lifted=$(env_sig lifted)
	identical=false
	[ "$sig_pinned" = "$sig_lifted" ] && identical=true
	if [ "$sig_machine" = "$sig_pinned" ]; then
		MACHINE_SETTING=pinned
	elif [ "$sig_machine" = "$sig_lifted" ]; then
		MACHINE_SETTING=lifted
	else
		MACHINE_SETTING=machine
	fi
	EXTRA=()
	seen="|$sig_machine|"
	for k in $KERNELS; do
		sig=$(env_sig "$k")
		case "$seen" in *"|$sig|"*) continue ;; esac
		seen="$seen$sig|"
		EXTRA+=("$k")
	done
	skipped=
	if [ "$identical" = true ]; then
		echo "bench: no pin set: pinned = lifted (OPENBLAS_CORETYPE|OPENBLAS_L2_SIZE: $sig_machine); the comparison runs once"
	elif [ ${#EXTRA[@]} -gt 0 ] && [ "$EXTERNAL" = true ]; then
		skipped="an external server (PGHOST/PGPORT): its environment cannot be changed"
		EXTRA=()
	elif [ ${#EXTRA[@]} -gt 0 ] && [[ " $DATASETS " != *" $COMPARE_DS "* ]]; then
		skipped="$COMPARE_DS is not in BENCH_DATASETS"
		EXTRA=()
	fi
	[ -z "$skipped" ] || echo "bench: the other OpenBLAS settings are not measured: $skipped"
	echo "bench: the machine's OpenBLAS setting: $MACHINE_SETTING ($sig_machine); the comparison also in: ${EXTRA[*]:-nothing else}"
	# the server in the machine's environment for everything but the comparison's other settings
	CUR_SETTING=machine
	[ "$EXTERNAL" = true ] || server_in machine
	export PGDATABASE=$DB
	PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
	"${PSQL[@]}" -d postgres -c 'SET client_min_messages = warning' \
		-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
	"${PSQL[@]}" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION mlcnn;
CREATE SCHEMA bench;
-- the one model being measured; the prediction queries join it as "models m"
CREATE TABLE models (model bytea NOT NULL);

-- a "Name:  N kB" field of this backend's /proc/<pid>/status, in kB
CREATE FUNCTION bench.proc_kb(field text) RETURNS bigint LANGUAGE sql AS $$
  SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
                       field || ':\s+(\d+) kB'))[1]::bigint
$$;

-- CPU seconds (user + system, all threads) of this backend so far; USER_HZ is
-- 100 on Linux
CREATE FUNCTION bench.cpu_seconds() RETURNS float8 LANGUAGE sql AS $$
  SELECT (f[12]::bigint + f[13]::bigint) / 100.0::float8
  FROM (SELECT string_to_array(split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'),
                                          ') ', 2), ' ') AS f) s
$$;

-- train on table src with opts, timed in the server; keep the model in
-- "models" when save; the backend's memory figures after it
CREATE FUNCTION bench.train(src text, opts jsonb, save boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  hwm0 bigint := bench.proc_kb('VmHWM');
  t0 timestamptz;
  cpu0 float8;
  secs float8;
  cpu float8;
  m bytea;
BEGIN
  cpu0 := bench.cpu_seconds();
  t0 := clock_timestamp();
  EXECUTE format('SELECT train_conv2d(pixels, label, $1) FROM %I', src) INTO m USING opts;
  secs := extract(epoch FROM clock_timestamp() - t0);
  cpu := bench.cpu_seconds() - cpu0;
  IF save THEN
    DELETE FROM models;
    INSERT INTO models VALUES (m);
  END IF;
  RETURN jsonb_build_object(
    'rows', (model_info(m) ->> 'rows_trained')::bigint, 'options', opts, 'wall_seconds', secs, 'cpu_seconds', cpu,
    'vmhwm_kb', bench.proc_kb('VmHWM'), 'start_vmhwm_kb', hwm0,
    'rss_anon_kb', bench.proc_kb('RssAnon'), 'rss_shmem_kb', bench.proc_kb('RssShmem'),
    'model_bytes', length(m), 'model_info', model_info(m));
END
$$;

-- milliseconds of each of n runs of query q (after one warm-up run), timed
-- in the server: no client start-up or round trip is counted
CREATE FUNCTION bench.time_ms(q text, n int) RETURNS float8[]
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  ms float8[] := '{}';
BEGIN
  EXECUTE q;
  FOR i IN 1..n LOOP
    t0 := clock_timestamp();
    EXECUTE q;
    ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
  END LOOP;
  RETURN ms;
END
$$;

-- evaluate() over the whole test table, timed
CREATE FUNCTION bench.evaluate_test() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  r jsonb;
BEGIN
  SELECT evaluate(m.model, t.pixels, t.label) INTO r FROM test t, models m;
  RETURN jsonb_build_object('seconds', extract(epoch FROM clock_timestamp() - t0)::float8,
                            'result', r);
END
$$;
SQL

	OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd -P)
	RAW=$OUT/raw
	mkdir -p "$RAW"
	rm -f "$RAW"/machine.json "$RAW"/settings.json "$RAW"/kernels.json "$RAW"/kernel-*.json
	"$PY" bench/report.py machine --out "$RAW/machine.json" \
		--module "$MODULE" \
		--postmaster-pid "$(sed -n 1p "$ROOT/.pgdata/data/postmaster.pid" 2>/dev/null || echo 0)" \
		--pg-version "$("${PSQL[@]}" -c 'SELECT version()')"
	cat >"$RAW/settings.json" <<EOF
{"epochs": $EPOCHS, "threads": $THREADS, "predict_threads": $PREDICT_THREADS,
 "torch_openblas_threads": $TORCH_BLAS_THREADS, "torch_omp_wait_policy": "$OMP_WAIT", "train_rows_cap": $TRAIN_ROWS, "repeats": $REPEATS,
 "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant",
 "layers": "$SPEC", "kernels": "$KERNELS", "pin": "$PIN", "tinydnn": $TINYDNN, "tinydnn_rows": $TINYDNN_ROWS,
 "dlib": $DLIB, "dlib_rows": $DLIB_ROWS, "cxxflags": "$CXXFLAGS_BENCH", "profile": $PROFILE, "profile_rows": $PROFILE_ROWS}
EOF
	extra_json=
	for k in "${EXTRA[@]}"; do extra_json="$extra_json${extra_json:+, }\"$k\""; done
	cat >"$RAW/kernels.json" <<EOF
{"comparison_dataset": "$COMPARE_DS", "machine_setting": "$MACHINE_SETTING", "identical": $identical,
 "pin": "$PIN", "requested": "$KERNELS", "extra": [$extra_json], "skipped_reason": "$skipped",
 "external_server": $EXTERNAL,
 "envs": {"machine": $(sig_json "$sig_machine"), "pinned": $(sig_json "$sig_pinned"), "lifted": $(sig_json "$sig_lifted")}}
EOF

	# training options of mlcnn, as the issue states them
	opts=$(printf '{"layers": "%s", "epochs": %d, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant", "normalize": "minmax", "threads": %d}' \
		"$SPEC" "$EPOCHS" "$THREADS")

	ran=()
	fashion_dir=
	for ds in $DATASETS; do
		step "$ds"
		if ! dir=$(bash data/dataset.sh "$ds" 2>"$RAW/$ds.err"); then
			echo "bench: SKIPPING $ds: the data set is not available:"
			sed 's/^/bench:   /' "$RAW/$ds.err"
			continue
		fi
		rm -f "$RAW/$ds.err" "$RAW/$ds"-*.json "$RAW/$ds"-*.log "$RAW/$ds"@*.json
		[ "$ds" = fashion-mnist ] && fashion_dir=$dir

		cap=
		[ "$TRAIN_ROWS" -gt 0 ] && cap="WHERE id < $TRAIN_ROWS"
		echo "loading $dir"
		"${PSQL[@]}" -v dir="$dir" >"$RAW/$ds-load.json" <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS train, test;
SELECT clock_timestamp() AS t0 \gset
CREATE TABLE train AS
  SELECT * FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz') $cap;
CREATE TABLE test AS
  SELECT * FROM load_idx(:'dir' || '/t10k-images-idx3-ubyte.gz', :'dir' || '/t10k-labels-idx1-ubyte.gz');
ALTER TABLE test ADD PRIMARY KEY (id);
VACUUM ANALYZE train;
VACUUM ANALYZE test;
SELECT jsonb_build_object('load_seconds', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::float8,
  'train_rows', (SELECT count(*) FROM train), 'test_rows', (SELECT count(*) FROM test), 'dir', :'dir');
SQL
		cat "$RAW/$ds-load.json"

		# everything in the machine's environment first
		CUR_SETTING=machine
		[ "$EXTERNAL" = true ] || kernel_facts "$MACHINE_SETTING"
		mlcnn_run "$ds"

		echo "opencv: its dnn module running mlcnn's model_to_onnx export of that model"
		"${PSQL[@]}" -At -c "SELECT encode(model_to_onnx(model), 'hex') FROM models" >"$RAW/$ds-mlcnn-onnx.hex"
		pyrun bench/opencv_bench.py --onnx-hex "$RAW/$ds-mlcnn-onnx.hex" --data "$dir" \
			--out "$RAW/$ds-opencv.json" --threads "$PREDICT_THREADS" --repeats "$REPEATS"
		rm -f "$RAW/$ds-mlcnn-onnx.hex"
		echo "pytorch"
		pyrun bench/torch_bench.py --framework pytorch --data "$dir" --out "$RAW/$ds-pytorch.json" \
			--epochs "$EPOCHS" --threads "$THREADS" --predict-threads "$PREDICT_THREADS" --train-rows "$TRAIN_ROWS" --repeats "$REPEATS"
		echo "tensorflow"
		if ! pyrun bench/torch_bench.py --framework tensorflow --data "$dir" --out "$RAW/$ds-tensorflow.json" \
			--epochs "$EPOCHS" --threads "$THREADS" --predict-threads "$PREDICT_THREADS" --train-rows "$TRAIN_ROWS" --repeats "$REPEATS"; then
			echo "bench: the TensorFlow run failed; its row says so"
			echo '{"framework": "tensorflow", "installed": false, "reason": "importable, but the run failed (see the output of make bench)"}' \
				>"$RAW/$ds-tensorflow.json"
		fi
		if [ "$TINYDNN" = 1 ]; then
			cxx_run tinydnn "$dir" "$ds" "$(cap_rows "$TRAIN_ROWS" "$TINYDNN_ROWS")"
		else
			not_run "$RAW/$ds-tinydnn.json" tinydnn "skipped (BENCH_TINYDNN=0)"
		fi
		if [ "$DLIB" = 1 ]; then
			cxx_run dlib "$dir" "$ds" "$(cap_rows "$TRAIN_ROWS" "$DLIB_ROWS")"
		else
			not_run "$RAW/$ds-dlib.json" dlib "skipped (BENCH_DLIB=0)"
		fi

		# the reference comparison in the other OpenBLAS settings: both sides
		# in the same environment, the server restarted in it
		if [ "$ds" = "$COMPARE_DS" ] && [ ${#EXTRA[@]} -gt 0 ]; then
			for k in "${EXTRA[@]}"; do
				step "$ds: mlcnn and PyTorch in the $k OpenBLAS setting ($(env_sig "$k"))"
				server_in "$k"
				kernel_facts "$k"
				CUR_SETTING=$k
				mlcnn_run "$ds@$k"
				echo "pytorch ($k)"
				pyrun bench/torch_bench.py --framework pytorch --data "$dir" --out "$RAW/$ds@$k-pytorch.json" \
					--epochs "$EPOCHS" --threads "$THREADS" --predict-threads "$PREDICT_THREADS" --train-rows "$TRAIN_ROWS" --repeats "$REPEATS"
				CUR_SETTING=machine
			done
			server_in machine
		fi
		ran+=("$ds")
	done

	did_resnet=0
	if [ "$RESNET" = 1 ]; then
		step "resnet: the ResNet-style network with batch norm, $RESNET_EPOCHS epochs on Fashion-MNIST, mlcnn and PyTorch"
		if [ -z "$fashion_dir" ] && ! fashion_dir=$(bash data/dataset.sh fashion-mnist 2>"$RAW/resnet.err"); then
			echo "bench: SKIPPING the ResNet runs: Fashion-MNIST is not available:"
			sed 's/^/bench:   /' "$RAW/resnet.err"
		else
			rm -f "$RAW/resnet.err" "$RAW"/resnet-*.json
			ropts=$(printf '{"layers": "%s", "epochs": %d, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant", "normalize": "minmax", "threads": %d}' \
				"$RESNET_SPEC" "$RESNET_EPOCHS" "$THREADS")
			"${PSQL[@]}" -v dir="$fashion_dir" >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS train, test;
CREATE TABLE train AS
  SELECT * FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz');
CREATE TABLE test AS
  SELECT * FROM load_idx(:'dir' || '/t10k-images-idx3-ubyte.gz', :'dir' || '/t10k-labels-idx1-ubyte.gz');
VACUUM ANALYZE train;
VACUUM ANALYZE test;
SQL
			echo "mlcnn: training the ResNet (fresh connection)"
			"${PSQL[@]}" -v opts="$ropts" >"$RAW/resnet-mlcnn-train.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SET mlcnn.progress = on;
SELECT bench.train('train', :'opts'::jsonb, true);
SQL
			"${PSQL[@]}" -v threads="$PREDICT_THREADS" >"$RAW/resnet-mlcnn-infer.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SET mlcnn.threads = :threads;
SELECT jsonb_build_object('evaluate', bench.evaluate_test());
SQL
			echo "pytorch: the ResNet"
			pyrun bench/torch_bench.py --framework pytorch --model resnet --data "$fashion_dir" \
				--out "$RAW/resnet-pytorch.json" --epochs "$RESNET_EPOCHS" --threads "$THREADS" \
				--predict-threads "$PREDICT_THREADS" --repeats 1
			did_resnet=1
		fi
	fi

	did_tune=0
	if [ "$TUNE" = 1 ]; then
		step "tune: tune_conv2d, grid and successive halving, 3 learning rates x 2 batch sizes, $TUNE_EPOCHS epochs"
		tname=$TUNE_DATA
		tdir=$(bash data/dataset.sh "$tname" 2>/dev/null) ||
			{ tname=fashion-mnist && tdir=$(bash data/dataset.sh fashion-mnist 2>/dev/null); } || tdir=
		if [ -z "$tdir" ]; then
			echo "bench: SKIPPING the tuning runs: neither MNIST nor Fashion-MNIST is available"
		else
			rm -f "$RAW"/tune-*.json
			"${PSQL[@]}" -v dir="$tdir" >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS tune_train, tune_test;
CREATE TABLE tune_train AS
  SELECT * FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz') WHERE id < 10000;
CREATE TABLE tune_test AS
  SELECT * FROM load_idx(:'dir' || '/t10k-images-idx3-ubyte.gz', :'dir' || '/t10k-labels-idx1-ubyte.gz');
VACUUM ANALYZE tune_train;
VACUUM ANALYZE tune_test;
SQL
			for strategy in grid halving; do
				topts=$(printf '{"layers": "%s", "epochs": %d, "optimizer": "adam", "lr_schedule": "constant", "validation_fraction": 0.1, "threads": %d, "strategy": "%s", "space": {"learning_rate": [0.0003, 0.001, 0.003], "batch_size": [32, 64]}}' \
					"$SPEC" "$TUNE_EPOCHS" "$THREADS" "$strategy")
				[ "$strategy" = halving ] && topts=$(printf '%s' "$topts" | sed 's/"strategy": "halving"/"strategy": "halving", "eta": 2, "min_epochs": 1/')
				echo "mlcnn: tune_conv2d $strategy on $tname (fresh connection)"
				"${PSQL[@]}" -v opts="$topts" -v ds="$tname" >"$RAW/tune-$strategy.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SELECT clock_timestamp() AS t0 \gset
CREATE TEMP TABLE tuned AS SELECT tune_conv2d(pixels, label, :'opts'::jsonb) AS model FROM tune_train;
SELECT jsonb_build_object('dataset', :'ds', 'strategy', (model_info(model)->'tuning'->>'strategy'),
         'seconds', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz),
         'tuning', model_info(model)->'tuning', 'layers', model_info(model)->'layers',
         'test', (SELECT evaluate(t.model, s.pixels, s.label) - 'confusion_matrix' - 'precision' - 'recall'
                  FROM tuned t, tune_test s))
FROM tuned;
SQL
			done
			"${PSQL[@]}" -c 'DROP TABLE IF EXISTS tune_train, tune_test' >/dev/null
			did_tune=1
		fi
	fi

	did_dist=0
	if [ "$DIST" = 1 ]; then
		step "distributed: train_distributed on two shard clusters (postgres_fdw) against train_conv2d on one server, Fashion-MNIST"
		if [ -z "$fashion_dir" ] && ! fashion_dir=$(bash data/dataset.sh fashion-mnist 2>"$RAW/dist.err"); then
			echo "bench: SKIPPING the distributed runs: Fashion-MNIST is not available"
		elif ! bash scripts/db.sh shards-start; then
			echo "bench: SKIPPING the distributed runs: no shard clusters (an external server?)"
		else
			rm -f "$RAW/dist.err" "$RAW"/dist-*.json
			for n in 1 2; do
				"${PSQL[@]}" -p $((PGPORT + n)) -d postgres -c 'SET client_min_messages = warning' \
					-c 'DROP DATABASE IF EXISTS mlcnn_shard' -c 'CREATE DATABASE mlcnn_shard' >/dev/null
				"${PSQL[@]}" -p $((PGPORT + n)) -d mlcnn_shard -v dir="$fashion_dir" -v k=$((n - 1)) >/dev/null <<'SQL'
CREATE EXTENSION mlcnn;
CREATE TABLE rows AS SELECT id, label, pixels, :k AS shard
  FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz') WHERE id % 2 = :k;
VACUUM ANALYZE rows;
SQL
			done
			"${PSQL[@]}" -v dir="$fashion_dir" -v host="$PGHOST" -v p1=$((PGPORT + 1)) -v p2=$((PGPORT + 2)) -v user="$PGUSER" >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS dist, dist_local, dist_test CASCADE;
DROP SERVER IF EXISTS bench_shard1, bench_shard2 CASCADE;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE SERVER bench_shard1 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host :'host', port :'p1', dbname 'mlcnn_shard', extensions 'mlcnn', async_capable 'true');
CREATE SERVER bench_shard2 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host :'host', port :'p2', dbname 'mlcnn_shard', extensions 'mlcnn', async_capable 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER bench_shard1 OPTIONS (user :'user');
CREATE USER MAPPING FOR CURRENT_USER SERVER bench_shard2 OPTIONS (user :'user');
CREATE TABLE dist (id integer, label integer, pixels bytea, shard integer) PARTITION BY LIST (shard);
CREATE FOREIGN TABLE dist_1 PARTITION OF dist FOR VALUES IN (0) SERVER bench_shard1 OPTIONS (table_name 'rows');
CREATE FOREIGN TABLE dist_2 PARTITION OF dist FOR VALUES IN (1) SERVER bench_shard2 OPTIONS (table_name 'rows');
CREATE TABLE dist_local AS
  SELECT * FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz');
CREATE TABLE dist_test AS
  SELECT * FROM load_idx(:'dir' || '/t10k-images-idx3-ubyte.gz', :'dir' || '/t10k-labels-idx1-ubyte.gz');
SQL
			dopts=$(printf '{"layers": "%s", "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant", "normalize": "minmax", "threads": 1}' "$SPEC")
			echo "mlcnn: train_distributed, 2 shards (1 thread each), $DIST_ROUNDS rounds of 1 epoch"
			"${PSQL[@]}" -v opts="$dopts" -v rounds="$DIST_ROUNDS" >"$RAW/dist-shards.json" <<'SQL'
SELECT clock_timestamp() AS t0 \gset
CREATE TEMP TABLE dm AS SELECT train_distributed('dist', :'opts'::jsonb || jsonb_build_object('rounds', :rounds, 'local_epochs', 1)) AS model;
SELECT jsonb_build_object('seconds', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz),
         'model_bytes', length(model), 'distributed', model_info(model)->'distributed',
         'test', (SELECT evaluate(d.model, t.pixels, t.label) - 'confusion_matrix' - 'precision' - 'recall' FROM dm d, dist_test t))
FROM dm;
SQL
			echo "mlcnn: train_conv2d on one server ($THREADS threads: the machine's), $DIST_ROUNDS epochs"
			"${PSQL[@]}" -v opts="$dopts" -v rounds="$DIST_ROUNDS" -v threads="$THREADS" >"$RAW/dist-one.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SELECT clock_timestamp() AS t0 \gset
CREATE TEMP TABLE lm AS SELECT train_conv2d(pixels, label, :'opts'::jsonb || jsonb_build_object('epochs', :rounds, 'threads', :threads)) AS model FROM dist_local;
SELECT jsonb_build_object('seconds', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz),
         'test', (SELECT evaluate(l.model, t.pixels, t.label) - 'confusion_matrix' - 'precision' - 'recall' FROM lm l, dist_test t))
FROM lm;
SQL
			"${PSQL[@]}" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS dist, dist_local, dist_test CASCADE' \
				-c 'DROP SERVER IF EXISTS bench_shard1, bench_shard2 CASCADE' >/dev/null
			bash scripts/db.sh shards-stop >/dev/null
			did_dist=1
		fi
	fi

	did_scaling=0
	if [ "$SCALING" = 1 ]; then
		step "scaling: mlcnn, 1 epoch on $SCALING_ROWS rows of Fashion-MNIST"
		if [ -z "$fashion_dir" ] && ! fashion_dir=$(bash data/dataset.sh fashion-mnist 2>"$RAW/scaling.err"); then
			echo "bench: SKIPPING the scaling runs: Fashion-MNIST is not available:"
			sed 's/^/bench:   /' "$RAW/scaling.err"
		else
			rm -f "$RAW/scaling.err" "$RAW"/scaling-*.json
			sopts=$(printf '{"layers": "%s", "epochs": 1, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant", "normalize": "minmax", "threads": %d}' \
				"$SPEC" "$THREADS")
			"${PSQL[@]}" -v dir="$fashion_dir" >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS scale_src;
CREATE TABLE scale_src AS
  SELECT * FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz');
SQL
			for n in $SCALING_ROWS; do
				# the first n rows of the 60,000, repeated as often as needed
				"${PSQL[@]}" -v n="$n" >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT count(*) AS src_rows FROM scale_src \gset
DROP TABLE IF EXISTS scale;
CREATE TABLE scale AS
  SELECT s.id + k * :src_rows AS id, s.label, s.pixels
  FROM generate_series(0, (:n - 1) / :src_rows) k, scale_src s
  WHERE s.id + k * :src_rows < :n
  ORDER BY k, s.id;
VACUUM ANALYZE scale;
SQL
				echo "mlcnn: $n rows, 1 epoch (fresh connection)"
				"${PSQL[@]}" -v opts="$sopts" >"$RAW/scaling-$n.json" <<'SQL'
SET max_parallel_workers_per_gather = 0;
SELECT bench.train('scale', :'opts'::jsonb, false);
SQL
			done
			"${PSQL[@]}" -c 'DROP TABLE IF EXISTS scale, scale_src' >/dev/null
			did_scaling=1
		fi
	fi

	did_profile=0
	if [ "$PROFILE" = 1 ]; then
		prows=$(cap_rows "$TRAIN_ROWS" "$PROFILE_ROWS")
		step "profile: bench/nn_bench, 1 epoch of the reference CNN on $prows rows of Fashion-MNIST, per layer, in each OpenBLAS setting"
		if [ -z "$fashion_dir" ] && ! fashion_dir=$(bash data/dataset.sh fashion-mnist 2>"$RAW/profile.err"); then
			echo "bench: SKIPPING the profile: Fashion-MNIST is not available:"
			sed 's/^/bench:   /' "$RAW/profile.err"
		else
			rm -f "$RAW/profile.err" "$RAW"/profile-* "$RAW/nn_bench-build.log"
			note=
			# the one make target of the core this script builds itself
			if make -s bench/nn_bench >"$RAW/nn_bench-build.log" 2>&1; then
				rm -f "$RAW/nn_bench-build.log"
			elif [ -x bench/nn_bench ]; then
				note="make bench/nn_bench failed (raw/nn_bench-build.log); the binary of $(date -r bench/nn_bench '+%F %T') ran"
				echo "bench: $note"
			fi
			psettings=$KERNELS
			[ "$identical" = true ] && psettings=pinned
			seen="|"
			for k in $psettings; do
				[ -x bench/nn_bench ] || { echo "bench: SKIPPING the profile: bench/nn_bench does not build"; break; }
				sig=$(env_sig "$k")
				case "$seen" in *"|$sig|"*) continue ;; esac
				seen="$seen$sig|"
				cmd=(./bench/nn_bench --images "$fashion_dir/train-images-idx3-ubyte.gz"
					--labels "$fashion_dir/train-labels-idx1-ubyte.gz" --rows "$prows" --epochs 1
					--threads "$THREADS" --layers "$SPEC" --set optimizer=adam --set learning_rate=0.001
					--set batch_size=64 --set lr_schedule=constant --set normalize=minmax)
				echo "nn_bench in the $k setting ($sig)"
				setting_args "$k"
				set +e
				env "${SET_ARGS[@]}" "${cmd[@]}" >"$RAW/profile-$k.txt" 2>&1
				rc=$?
				set -e
				if [ "$rc" -ne 0 ]; then
					# the report names the failure in place of this setting's table
					why="exit status $rc"
					[ "$rc" -gt 128 ] && why="$why (signal $((rc - 128)), SIG$(kill -l $((rc - 128)) 2>/dev/null))"
					echo "nn_bench failed: $why" >>"$RAW/profile-$k.txt"
					mv "$RAW/profile-$k.txt" "$RAW/profile-$k.failed"
					echo "bench: nn_bench failed in the $k setting ($why):"
					tail -n 5 "$RAW/profile-$k.failed" | sed 's/^/bench:   /'
					did_profile=1
					continue
				fi
				cat "$RAW/profile-$k.txt"
				text="${cmd[*]}"
				env "${SET_ARGS[@]}" "$PY" bench/report.py kernel --name "$k" --out "$RAW/profile-$k.kernel.json" \
					--module bench/nn_bench
				"$PY" -c 'import json, sys
json.dump({"rows": int(sys.argv[1]), "threads": int(sys.argv[2]), "command": sys.argv[3],
           "env": json.loads(sys.argv[4]), "note": sys.argv[5]}, open(sys.argv[6], "w"), indent=1)' \
					"$prows" "$THREADS" "${text/"$SPEC"/\"$SPEC\"}" "$(sig_json "$sig")" \
					"$note" "$RAW/profile-$k.json"
				did_profile=1
			done
		fi
	fi

	step "report"
	args=(report --results "$OUT")
	[ ${#ran[@]} -gt 0 ] && args+=(--datasets "${ran[@]}")
	[ "$did_scaling" = 1 ] && args+=(--scaling)
	[ "$did_resnet" = 1 ] && args+=(--resnet)
	[ "$did_tune" = 1 ] && args+=(--tune)
	[ "$did_dist" = 1 ] && args+=(--dist)
	[ "$did_profile" = 1 ] && args+=(--profile)
	[ ${#ran[@]} -gt 0 ] || [ "$did_scaling" = 1 ] || [ "$did_resnet" = 1 ] || [ "$did_tune" = 1 ] || [ "$did_dist" = 1 ] ||
		[ "$did_profile" = 1 ] ||
		die "no data set was available; nothing was measured"
	"$PY" bench/report.py "${args[@]}"
}

trap restore_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
main
