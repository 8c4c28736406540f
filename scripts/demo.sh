#!/usr/bin/env bash
# demo.sh (make demo): mlcnn end to end on the embedded cluster.
#   set up, build and install; start the cluster; create the database
#   mlcnn_demo with the extension; load MNIST's training and test sets
#   ($MNIST_DIR, else ../shared/data/mnist next to the checkout) or, when
#   MNIST is not there, Fashion-MNIST; then train and evaluate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

step() {
	printf '\n==> %s\n' "$*"
}

step "setup, build, install"
bash scripts/setup.sh
make -s -j"$(nproc)"
"${SUDO[@]}" make -s install >/dev/null

step "start the embedded cluster"
bash scripts/db.sh start
eval "$(bash scripts/db.sh env)"
export PGHOST PGPORT PGUSER PGDATABASE
export PGDATABASE=mlcnn_demo

step "database mlcnn_demo"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' \
	-c 'DROP DATABASE IF EXISTS mlcnn_demo' \
	-c 'CREATE DATABASE mlcnn_demo'
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION mlcnn'

# the data: MNIST when it is there, else Fashion-MNIST (same format and shape)
if dir=$(bash data/dataset.sh mnist 2>/dev/null); then
	dataset=MNIST
else
	dir=$(bash data/dataset.sh fashion-mnist)
	dataset=Fashion-MNIST
fi
step "load $dataset from $dir"
psql -X -q -v ON_ERROR_STOP=1 -v dir="$dir" <<'SQL'
\timing on
CREATE TABLE train AS
  SELECT * FROM load_idx(:'dir' || '/train-images-idx3-ubyte.gz', :'dir' || '/train-labels-idx1-ubyte.gz');
CREATE TABLE test AS
  SELECT * FROM load_idx(:'dir' || '/t10k-images-idx3-ubyte.gz', :'dir' || '/t10k-labels-idx1-ubyte.gz');
ALTER TABLE train ADD PRIMARY KEY (id);
ALTER TABLE test ADD PRIMARY KEY (id);
\timing off
SELECT 'train' AS split, count(*) AS rows FROM train
UNION ALL
SELECT 'test', count(*) FROM test;
SQL

# --- train and evaluate
# One session, so that the backend's peak resident memory (VmHWM) is the
# training's. Progress comes as one NOTICE per epoch.
step "train_conv2d(pixels, label) with the default options, evaluate, predict"
psql -X -q -v ON_ERROR_STOP=1 -v dataset="$dataset" <<'SQL'
SET mlcnn.progress = on;
SET client_min_messages = notice;
\timing on
CREATE TABLE models AS
  SELECT 'default' AS name, train_conv2d(pixels, label) AS model FROM train;
\timing off
RESET mlcnn.progress;

CREATE TEMP TABLE result AS
WITH ev AS (
  SELECT evaluate(m.model, t.pixels, t.label) AS e FROM test t, models m
)
SELECT (model_info(m.model) ->> 'training_seconds')::float8 AS training_s,
       (SELECT (e ->> 'accuracy')::float8 FROM ev) AS accuracy,
       (SELECT (e ->> 'rows')::int FROM ev) AS test_rows,
       jsonb_array_length(model_info(m.model) -> 'history') AS epochs
FROM models m;

-- time to predict 100 samples: 100 single-row predict() calls, median of 5 runs
CREATE TEMP TABLE predict_runs (ms float8);
DO $$
DECLARE
  t0 timestamptz;
BEGIN
  FOR i IN 1..5 LOOP
    t0 := clock_timestamp();
    PERFORM count(predict(m.model, t.pixels))
      FROM (SELECT pixels FROM test ORDER BY id LIMIT 100) t, models m;
    INSERT INTO predict_runs VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
END
$$;

SELECT :'dataset' AS dataset,
       (SELECT count(*) FROM train) AS train_rows,
       r.test_rows,
       r.epochs
FROM result r;

\echo
\echo 'mlcnn on this machine, in the layout of the study''s results table:'
SELECT 'mlcnn (PostgreSQL, CPU)' AS "system",
       format('%s s', round(r.training_s::numeric, 1)) AS "training time",
       format('%s %%', round(100 * r.accuracy::numeric, 2)) AS "accuracy",
       format('%s s', round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM predict_runs)::numeric / 1000, 4))
         AS "time to predict 100 samples",
       format('%s MB', round((substring(pg_read_file('/proc/' || pg_backend_pid() || '/status')
                                        FROM 'VmHWM:\s+(\d+) kB')::numeric) / 1024)) AS "peak memory"
FROM result r;
SQL

step "done: the tables train, test and models are in database mlcnn_demo (bash scripts/db.sh psql -d mlcnn_demo)"
