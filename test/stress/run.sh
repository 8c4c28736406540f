#!/usr/bin/env bash
# run.sh (make stress): mlcnn under concurrency on the embedded cluster.
#
# For STRESS_SECONDS (default 60) seconds, STRESS_PREDICTORS (default 8)
# pgbench sessions predict and STRESS_TRAINERS (default 2) train at once:
#   predict_set.sql  the whole fixed test set (500 synthetic rows) per
#                    transaction, its prediction checksum checked against a
#                    single-session run (weight 1)
#   predict_row.sql  one random row per statement, checked against the
#                    single-session prediction of that row (weight 20)
#   train.sql        the default network, one epoch on 512 rows with 2
#                    OpenBLAS threads; every stored model must equal the
#                    single-session model byte for byte
# Any mismatch is a division by zero, which pgbench counts as a failed
# transaction and aborts that client. Passes when no transaction failed, no
# client aborted, every trained model matches, the predictions afterwards
# still match, and the server log shows no crashed backend. Reports
# predictions per second and trainings completed, and writes them into
# test/stress/README.md. Prints "N passed, N failed"; exit status 1 on failure.
#
# Needs the extension installed (make install). Uses the database mlcnn_stress
# (dropped and recreated) on the cluster of scripts/db.sh (started if needed)
# or the server PGHOST/PGPORT name.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
HERE=$ROOT/test/stress
cd "$ROOT"

DURATION=${STRESS_SECONDS:-60}
PREDICTORS=${STRESS_PREDICTORS:-8}
TRAINERS=${STRESS_TRAINERS:-2}
DB=mlcnn_stress
OUT=$ROOT/build/stress
TRAIN_OPTS='{"epochs": 1, "threads": 2, "record_times": false}'

PASSED=0
FAILED=0

# one result line
check() {
	local ok=$1
	shift
	if [ "$ok" -eq 1 ]; then
		PASSED=$((PASSED + 1))
		echo "ok - $*"
	else
		FAILED=$((FAILED + 1))
		echo "not ok - $*"
	fi
}

die() {
	echo "stress: $*" >&2
	echo "$PASSED passed, $((FAILED + 1)) failed"
	exit 1
}

mkdir -p "$OUT"

# ------------------------------------------------------------ data and server
if [ ! -f build/testdata/synth/t10k-images-idx3-ubyte.gz ]; then
	make -s data/idxtool >/dev/null || die "cannot build data/idxtool"
	data/idxtool synth build/testdata/synth 2000 500 1 >/dev/null || die "cannot write build/testdata/synth"
	chmod a+rx build
	chmod -R a+rX build/testdata
fi
bash scripts/db.sh start >/dev/null || die "the embedded cluster does not start"
eval "$(bash scripts/db.sh env)"
export PGHOST PGPORT PGUSER PGDATABASE

# a crash shows in the server log (when it is ours to read)
SERVER_LOG=$ROOT/.pgdata/server.log
log_start=0
if [ -r "$SERVER_LOG" ]; then
	log_start=$(wc -l <"$SERVER_LOG")
fi

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" || die "cannot create the database $DB"
export PGDATABASE=$DB

# ------------------------------------------------------------ single-session reference
echo "stress: loading data and computing the single-session reference"
psql -X -q -v ON_ERROR_STOP=1 <<EOF || die "setup failed (is the extension installed? make install)"
CREATE EXTENSION mlcnn;
CREATE TABLE st_train AS
SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
CREATE TABLE st_test AS
SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                       'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');
ALTER TABLE st_test ADD PRIMARY KEY (id);
-- the served model: the default network, 2 epochs on all 2,000 rows
CREATE TABLE st_model (name text PRIMARY KEY, blob bytea);
INSERT INTO st_model
SELECT 'base', train_conv2d(pixels, label, '{"epochs": 2, "record_times": false}') FROM st_train;
SET mlcnn.threads = 1;
CREATE TABLE st_ref_rows AS
SELECT t.id, predict(m.blob, t.pixels) AS pred FROM st_model m, st_test t WHERE m.name = 'base';
ALTER TABLE st_ref_rows ADD PRIMARY KEY (id);
CREATE TABLE st_ref (what text PRIMARY KEY, value text);
INSERT INTO st_ref
SELECT 'predictions', md5(string_agg(pred::text, ',' ORDER BY id)) FROM st_ref_rows;
INSERT INTO st_ref VALUES ('options', '$TRAIN_OPTS');
INSERT INTO st_ref
SELECT 'model', md5(train_conv2d(pixels, label, (SELECT value::jsonb FROM st_ref WHERE what = 'options')))
FROM st_train WHERE id < 512;
CREATE TABLE st_trained (n serial, client int, blob bytea);
VACUUM ANALYZE;
EOF
ref_pred=$(psql -X -At -c "SELECT value FROM st_ref WHERE what = 'predictions'")
ref_model=$(psql -X -At -c "SELECT value FROM st_ref WHERE what = 'model'")
toasted=$(psql -X -At -c "SELECT pg_column_size(blob) < octet_length(blob) OR pg_relation_size(reltoastrelid) > 0
                           FROM st_model, pg_class WHERE relname = 'st_model'")
echo "stress: reference predictions $ref_pred, reference model $ref_model (model stored out of line: $toasted)"

# ------------------------------------------------------------ the run
echo "stress: $PREDICTORS predicting and $TRAINERS training sessions for $DURATION s"
# predictors on one OpenBLAS thread each (single-row inference is fastest so)
PGOPTIONS="-c mlcnn.threads=1" pgbench -n -T "$DURATION" -c "$PREDICTORS" -j 2 \
	-f "$HERE/predict_set.sql@1" -f "$HERE/predict_row.sql@20" "$DB" >"$OUT/predict.log" 2>&1 &
pred_pid=$!
pgbench -n -T "$DURATION" -c "$TRAINERS" -j "$TRAINERS" -f "$HERE/train.sql" "$DB" >"$OUT/train.log" 2>&1 &
train_pid=$!
wait "$pred_pid"
pred_rc=$?
wait "$train_pid"
train_rc=$?

# ------------------------------------------------------------ results
# "SQL script N: path" is followed by its "- N transactions" line
script_tx() {
	awk -v s="$2" '$0 ~ "^SQL script [0-9]+: .*" s { f = 1; next }
		f && /^ - [0-9]+ transactions/ { print $2; exit }' "$1"
}
set_tx=$(script_tx "$OUT/predict.log" predict_set.sql)
row_tx=$(script_tx "$OUT/predict.log" predict_row.sql)
set_tx=${set_tx:-0}
row_tx=${row_tx:-0}
pred_failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$OUT/predict.log")
train_failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$OUT/train.log")
pred_lat=$(sed -n 's/^latency average = \(.*\)$/\1/p' "$OUT/predict.log")
train_lat=$(sed -n 's/^latency average = \(.*\)$/\1/p' "$OUT/train.log")
trained=$(psql -X -At -c "SELECT count(*) FROM st_trained")
trained_ok=$(psql -X -At -c "SELECT count(*) FROM st_trained WHERE md5(blob) = '$ref_model'")
trained_by=$(psql -X -At -c "SELECT string_agg(c::text, '/' ORDER BY client) FROM (SELECT client, count(*) c FROM st_trained GROUP BY client) s")
preds=$((set_tx * 500 + row_tx))
rate=$(awk -v p="$preds" -v d="$DURATION" 'BEGIN { printf "%.0f", p / d }')

if [ "$pred_rc" -eq 0 ] && ! grep -q 'aborted' "$OUT/predict.log" && [ "${pred_failed:-x}" = 0 ]; then
	check 1 "predicting sessions: no error ($set_tx full test sets, $row_tx single rows)"
else
	sed 's/^/# /' "$OUT/predict.log" | tail -n 30
	check 0 "predicting sessions: no error (exit status $pred_rc, failed transactions ${pred_failed:-?})"
fi
if [ "$train_rc" -eq 0 ] && ! grep -q 'aborted' "$OUT/train.log" && [ "${train_failed:-x}" = 0 ]; then
	check 1 "training sessions: no error"
else
	sed 's/^/# /' "$OUT/train.log" | tail -n 30
	check 0 "training sessions: no error (exit status $train_rc, failed transactions ${train_failed:-?})"
fi
if [ "$set_tx" -gt 0 ] && [ "$row_tx" -gt 0 ]; then
	check 1 "every concurrent prediction matched the single-session run (checked in each transaction)"
else
	check 0 "predictions ran at all"
fi
if [ "${trained:-0}" -gt 0 ] && [ "$trained" = "$trained_ok" ]; then
	check 1 "all $trained concurrent trainings gave the single-session model bytes"
else
	check 0 "concurrent trainings: $trained_ok of ${trained:-0} gave the single-session model bytes"
fi
after=$(PGOPTIONS="-c mlcnn.threads=2" psql -X -At -c "SELECT md5(string_agg(predict(m.blob, t.pixels)::text, ',' ORDER BY t.id))
                        FROM st_model m, st_test t WHERE m.name = 'base'")
if [ "$after" = "$ref_pred" ]; then
	check 1 "after the run, predictions (2 threads) still match"
else
	check 0 "after the run, predictions (2 threads) still match: $after, want $ref_pred"
fi
if [ -r "$SERVER_LOG" ]; then
	crashes=$(tail -n +"$((log_start + 1))" "$SERVER_LOG" | grep -Ec 'terminated by signal|PANIC|was terminated' || true)
	if [ "$crashes" -eq 0 ]; then
		check 1 "no backend crashed (server log)"
	else
		tail -n +"$((log_start + 1))" "$SERVER_LOG" | grep -E 'terminated by signal|PANIC|was terminated' | sed 's/^/# /'
		check 0 "no backend crashed (server log: $crashes lines)"
	fi
fi

echo
echo "stress: $DURATION s, $PREDICTORS predicting + $TRAINERS training sessions on $(nproc) cores"
echo "stress: $preds predictions ($rate per second; average latency ${pred_lat:-?} per transaction)"
echo "stress: $trained trainings completed (per client: ${trained_by:-none}; average ${train_lat:-?} each)"

# ------------------------------------------------------------ README
status="passed"
[ "$FAILED" -eq 0 ] || status="FAILED ($FAILED checks)"
cat >"$HERE/README.md" <<EOF
# Concurrency stress test

\`make stress\` (\`bash test/stress/run.sh\`) runs, on the embedded cluster of
\`scripts/db.sh\`, $PREDICTORS predicting and $TRAINERS training pgbench sessions at
once for \`STRESS_SECONDS\` (default 60) seconds, in the database \`mlcnn_stress\`:

- \`predict_set.sql\` (weight 1): predict the whole fixed test set, 500
  synthetic 28x28 images, with the served model (the default network, stored
  out of line in TOAST), and check the checksum of the 500 predictions
  against a single-session run;
- \`predict_row.sql\` (weight 20): predict one random test row, a new call
  site each time (so the model is decoded anew), checked against the
  single-session prediction of that row;
- \`train.sql\`: train the default network for one epoch on 512 rows with 2
  OpenBLAS threads and store the model; afterwards every stored model must
  equal the single-session model byte for byte (\`record_times\` false).

A mismatch is a division by zero, so pgbench counts it as a failed
transaction. Predicting sessions use \`mlcnn.threads = 1\`. The run passes
when no transaction failed, every trained model matches, the predictions
still match afterwards (with 2 threads), and no backend crashed. Raw pgbench
output: \`build/stress/predict.log\`, \`build/stress/train.log\`.
\`STRESS_SECONDS=10 make stress\` is a quick smoke run; \`STRESS_PREDICTORS\`
and \`STRESS_TRAINERS\` change the session counts.

## Latest results

Written by run.sh on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, PostgreSQL $(psql -X -At -c 'SHOW server_version' | cut -d' ' -f1):

| | |
|---|---|
| duration | $DURATION s |
| sessions | $PREDICTORS predicting, $TRAINERS training |
| predictions | $preds ($set_tx full test sets of 500, $row_tx single rows) |
| throughput | **$rate predictions/s** (average latency ${pred_lat:-?} per transaction) |
| trainings completed | **$trained** (per client: ${trained_by:-none}; average ${train_lat:-?} each) |
| failed transactions | predicting ${pred_failed:-?}, training ${train_failed:-?} |
| models equal to the single-session model | $trained_ok of $trained |
| result | $status ($PASSED passed, $FAILED failed) |
EOF

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
