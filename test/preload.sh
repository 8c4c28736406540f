#!/usr/bin/env bash
# preload.sh: mlcnn loaded by shared_preload_libraries.
#
# With the library preloaded, OpenBLAS is initialised in the postmaster
# (its constructor runs at load, and _PG_init installs the hooks there), and
# every backend and parallel worker is a fork of it. Threads do not survive
# a fork, so this is where a BLAS thread pool could hang or crash. The test
# starts a second, throwaway cluster (build/preload-cluster, port
# MLCNN_PRELOAD_PORT or 55439, run as the same unprivileged user "mlcnn" as
# scripts/db.sh when we are root) with shared_preload_libraries = 'mlcnn',
# trains with 2 OpenBLAS threads and predicts with SET mlcnn.threads = 2, in
# a normal backend, in parallel workers and in two backends at once, and
# compares the model bytes (record_times false) and the predictions with the
# same queries on the embedded cluster of scripts/db.sh, which loads the
# library on first use. It also checks that the OpenBLAS threads such a
# forked backend builds block the server's signals. Then it stops and
# removes the cluster.
#
# Needs: the extension installed (make install), build/testdata (scripts/test.sh
# writes it) and the embedded cluster running (bash scripts/db.sh start).
# Prints TAP lines and ends with "N passed, N failed"; exit status 1 on failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BASE=$ROOT/build/preload-cluster
DATA=$BASE/data
LOG=$BASE/server.log
PORT=${MLCNN_PRELOAD_PORT:-55439}
# the socket folder: the cluster's, unless that path is too long for a Unix socket
SOCK=$BASE
if [ $((${#BASE} + 10 + ${#PORT})) -gt 107 ]; then
	SOCK=/tmp/mlcnn-preload-sock-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
fi
SERVER_USER=mlcnn
BINDIR=$(pg_config --bindir)
REFDB=mlcnn_preload_ref
TIMEOUT=180                     # seconds for any one client call: a hang is a failure

PASSED=0
FAILED=0
N=0

# one TAP line
check() {
	local ok=$1
	shift
	N=$((N + 1))
	if [ "$ok" -eq 1 ]; then
		PASSED=$((PASSED + 1))
		echo "ok $N - $*"
	else
		FAILED=$((FAILED + 1))
		echo "not ok $N - $*"
	fi
}

# is "$1" = "$2" (both non-empty)? description in $3
check_eq() {
	if [ -n "$1" ] && [ "$1" = "$2" ]; then
		check 1 "$3"
	else
		check 0 "$3"
		echo "#     got:  '${1}'"
		echo "#     want: '${2}'"
	fi
}

# run a command as the server's OS user
as_server() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd "$BASE" && runuser -u "$SERVER_USER" -- "$@")
	else
		(cd "$BASE" && "$@")
	fi
}

# psql on the preload cluster (database $1), reading SQL from stdin
pre_psql() {
	local db=$1
	shift
	timeout "$TIMEOUT" psql -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d "$db" "$@"
}

# psql on the embedded cluster of scripts/db.sh (or PGHOST/PGPORT)
ref_psql() {
	local db=$1
	shift
	timeout "$TIMEOUT" psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"
}

stop_cluster() {
	if [ -f "$DATA/postmaster.pid" ]; then
		as_server "$BINDIR/pg_ctl" stop -w -t 60 -m fast -D "$DATA" >/dev/null 2>&1 ||
			as_server "$BINDIR/pg_ctl" stop -w -t 30 -m immediate -D "$DATA" >/dev/null 2>&1
	fi
}

cleanup() {
	stop_cluster
	rm -rf "$BASE"
	[ "$SOCK" = "$BASE" ] || rm -rf "$SOCK"
	ref_psql postgres -c "DROP DATABASE IF EXISTS $REFDB" >/dev/null 2>&1 || true
}

finish() {
	echo "1..$N"
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit $?
}

# ------------------------------------------------------------------ the SQL
# The same on both clusters. 512 training rows, the default network (two
# conv layers, dense 128), one epoch on 2 threads; then 500 test rows.
SETUP_SQL="
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS mlcnn;
DROP TABLE IF EXISTS pl_train, pl_test, pl_model;
CREATE TABLE pl_train AS SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                                                'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz') WHERE id < 512;
CREATE TABLE pl_test AS SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                                               'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');
"
TRAIN_SQL="
CREATE TABLE pl_model AS
SELECT train_conv2d(pixels, label, '{\"epochs\": 1, \"threads\": 2, \"record_times\": false}') AS blob FROM pl_train;
SELECT md5(blob) FROM pl_model;
"
PREDICT_SQL="
SET mlcnn.threads = 2;
SELECT md5(string_agg(predict(m.blob, t.pixels)::text, ',' ORDER BY t.id)) FROM pl_model m, pl_test t;
"
EVAL_SQL="
SET mlcnn.threads = 2;
SELECT evaluate(m.blob, t.pixels, t.label)->>'correct' FROM pl_model m, pl_test t;
"
# predict() in parallel workers (forks of the postmaster too): the per-row
# results summed in a parallel aggregate
PARALLEL_SQL="
SET mlcnn.threads = 2;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET FORCE_PARALLEL = on;
SELECT sum(predict((SELECT blob FROM pl_model), t.pixels) * (t.id + 1)) FROM pl_test t;
"
SERIAL_SUM_SQL="
SET mlcnn.threads = 2;
SELECT sum(predict((SELECT blob FROM pl_model), t.pixels) * (t.id + 1)) FROM pl_test t;
"

# ------------------------------------------------------------------ reference
echo "# preload.sh: mlcnn in shared_preload_libraries (cluster $BASE, port $PORT)"
if [ ! -d "$ROOT/build/testdata/synth" ]; then
	echo "# build/testdata/synth is missing: run scripts/test.sh (or data/idxtool synth build/testdata/synth 2000 500 1)"
	check 0 "test data present"
	finish
fi
trap cleanup EXIT
cleanup

eval "$(bash "$ROOT/scripts/db.sh" env)"
export PGHOST PGPORT PGUSER PGDATABASE
if ! ref_psql postgres -c "CREATE DATABASE $REFDB" >/dev/null; then
	check 0 "reference database on the embedded cluster (is it running? bash scripts/db.sh start)"
	finish
fi
ref_psql "$REFDB" <<<"$SETUP_SQL" >/dev/null
ref_model=$(ref_psql "$REFDB" <<<"$TRAIN_SQL")
ref_pred=$(ref_psql "$REFDB" <<<"$PREDICT_SQL")
ref_eval=$(ref_psql "$REFDB" <<<"$EVAL_SQL")
ref_sum=$(ref_psql "$REFDB" <<<"$SERIAL_SUM_SQL")
echo "# reference (library loaded on first use): model $ref_model, predictions $ref_pred, $ref_eval correct"

# ------------------------------------------------------------------ the cluster
mkdir -p "$BASE" "$SOCK"
if [ "$(id -u)" -eq 0 ]; then
	if ! id "$SERVER_USER" >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$SERVER_USER"
	fi
	chown "$SERVER_USER:$SERVER_USER" "$BASE" "$SOCK"
fi
if ! as_server "$BINDIR/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C --no-sync \
	>"$BASE/initdb.log" 2>&1; then
	cat "$BASE/initdb.log"
	check 0 "initdb of the preload cluster"
	finish
fi
as_server tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$SOCK'
shared_preload_libraries = 'mlcnn'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 20
max_worker_processes = 8
max_parallel_workers = 4
EOF
ln -sfn "$ROOT/build/testdata" "$DATA/mlcnn_test_data"
if as_server "$BINDIR/pg_ctl" start -w -t 60 -D "$DATA" -l "$LOG" >/dev/null; then
	check 1 "a cluster with shared_preload_libraries = 'mlcnn' starts"
else
	tail -n 20 "$LOG" | sed 's/^/# /'
	check 0 "a cluster with shared_preload_libraries = 'mlcnn' starts"
	finish
fi

# the GUCs exist before CREATE EXTENSION: the library came from the postmaster
got=$(pre_psql postgres -c "SELECT current_setting('shared_preload_libraries') || ' ' || (current_setting('mlcnn.max_train_memory', true) IS NOT NULL)")
check_eq "$got" "mlcnn true" "the library is preloaded: its settings exist in a fresh backend before any call"

pre_psql postgres -c "CREATE DATABASE mlcnn_preload" >/dev/null
if pre_psql mlcnn_preload <<<"$SETUP_SQL" >/dev/null; then
	check 1 "CREATE EXTENSION and load_idx in the preloaded cluster"
else
	check 0 "CREATE EXTENSION and load_idx in the preloaded cluster"
fi

got=$(pre_psql mlcnn_preload <<<"$TRAIN_SQL")
check_eq "$got" "$ref_model" "training with 2 OpenBLAS threads gives the same model bytes as without preloading"
got=$(pre_psql mlcnn_preload <<<"$PREDICT_SQL")
check_eq "$got" "$ref_pred" "predict() with SET mlcnn.threads = 2: the same 500 predictions"
got=$(pre_psql mlcnn_preload <<<"$EVAL_SQL")
check_eq "$got" "$ref_eval" "evaluate() with 2 threads: the same number correct"
# a backend forked by the postmaster starts with OpenBLAS's pool down (its
# fork handler shut it down in the postmaster); the pool built for the first
# computation must block PostgreSQL's signals (HUP INT QUIT USR1 USR2 ALRM
# TERM) in every thread but the backend's own: "unblocked/other threads"
got=$(pre_psql mlcnn_preload <<'EOF' | tail -n 1
SET mlcnn.threads = 2;
SELECT evaluate(m.blob, t.pixels, t.label)->>'correct' FROM pl_model m, pl_test t;
WITH tasks AS (
	SELECT t::int AS tid,
	       ('x' || lpad((regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/task/' || t || '/status'),
	                                  'SigBlk:\s+([0-9a-f]+)'))[1], 16, '0'))::bit(64)::bigint AS sigblk
	FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/task') t),
     sigs AS (SELECT sum(1::bigint << (s - 1))::bigint AS m FROM unnest(ARRAY[1, 2, 3, 10, 12, 14, 15]) s)
SELECT count(*) FILTER (WHERE sigblk & m <> m) || '/' || count(*)
FROM tasks, sigs WHERE tid <> pg_backend_pid();
EOF
)
if [[ $got =~ ^0/[1-9][0-9]*$ ]]; then
	check 1 "OpenBLAS threads built in a forked backend block the server's signals ($got unblocked/other threads)"
else
	check 0 "OpenBLAS threads built in a forked backend block the server's signals (got '$got' unblocked/other threads)"
fi
# force_parallel_mode became debug_parallel_query in PostgreSQL 16
force=force_parallel_mode
if [ "$(pre_psql postgres -c 'SHOW server_version_num')" -ge 160000 ]; then
	force=debug_parallel_query
fi
PARALLEL_SQL=${PARALLEL_SQL/FORCE_PARALLEL/$force}
got=$(pre_psql mlcnn_preload <<<"$PARALLEL_SQL")
check_eq "$got" "$ref_sum" "predict() in parallel workers (forced parallel plan) with 2 threads: the same weighted sum"
workers=$(pre_psql mlcnn_preload <<EOF
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET $force = on;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(predict((SELECT blob FROM pl_model), t.pixels)) FROM pl_test t;
EOF
)
if grep -Eq 'Workers Launched: [1-9]' <<<"$workers"; then
	check 1 "the parallel plan really ran in workers"
else
	echo "$workers" | sed 's/^/# /'
	check 0 "the parallel plan really ran in workers"
fi

# two backends training at once, each with 2 threads
out1=$BASE/train1.out
out2=$BASE/train2.out
sed 's/CREATE TABLE pl_model AS/CREATE TEMP TABLE pl_model AS/' <<<"$TRAIN_SQL" >"$BASE/train_temp.sql"
pre_psql mlcnn_preload -f "$BASE/train_temp.sql" >"$out1" 2>&1 &
p1=$!
pre_psql mlcnn_preload -f "$BASE/train_temp.sql" >"$out2" 2>&1 &
p2=$!
wait "$p1"
r1=$?
wait "$p2"
r2=$?
if [ "$r1" -eq 0 ] && [ "$r2" -eq 0 ] && [ "$(cat "$out1")" = "$ref_model" ] && [ "$(cat "$out2")" = "$ref_model" ]; then
	check 1 "two backends training at once (2 threads each) both give the reference model"
else
	sed 's/^/# /' "$out1" "$out2"
	check 0 "two backends training at once (2 threads each) both give the reference model (exit $r1, $r2)"
fi

# the server survived all of it: no crashed backend, a clean fast stop
if grep -Eq 'terminated by signal|was terminated|PANIC|server process .* exited with exit code [1-9]' "$LOG"; then
	grep -E 'terminated by signal|was terminated|PANIC|exited with exit code' "$LOG" | sed 's/^/# /'
	check 0 "no backend crashed (server log)"
else
	check 1 "no backend crashed (server log)"
fi
if as_server "$BINDIR/pg_ctl" stop -w -t 60 -m fast -D "$DATA" >/dev/null; then
	check 1 "the preloaded cluster stops cleanly"
else
	check 0 "the preloaded cluster stops cleanly"
fi

cleanup
trap - EXIT
finish
