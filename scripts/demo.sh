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

step "done: the tables train and test are in database mlcnn_demo (bash scripts/db.sh psql -d mlcnn_demo)"
