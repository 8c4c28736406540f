#!/usr/bin/env bash
# fdw.sh: train_distributed, evaluate and compute_gradients across servers,
# on two throwaway shard clusters (scripts/db.sh shards-start) holding the
# rows, reached from the main cluster through postgres_fdw foreign
# partitions of one partitioned table.
#
# Each shard loads its own rows on its own server (load_idx there), so they
# never pass through the coordinator; the coordinator's table "dist" is
# partitioned by shard into two postgres_fdw foreign tables whose servers
# list mlcnn in "extensions" (so aggregates of mlcnn are pushed down) and
# are async_capable (so the shards work at the same time). Then
# test/distributed/fdw.sql checks it with pgTAP. Data: the first 4,000 rows
# of Fashion-MNIST (Debian's dataset-fashion-mnist), split by id % 2, and
# its first 1,000 test rows on the coordinator; the synthetic set when
# Fashion-MNIST is not installed. Prints TAP lines and "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
eval "$(bash scripts/db.sh env)"
export PGHOST PGPORT PGUSER
bash scripts/db.sh shards-start
DB=${MLCNN_TEST_DB:-mlcnn_test}
FM=/usr/share/datasets/fashion-mnist
if [ -f "$FM/train-labels-idx1-ubyte.gz" ]; then
	train="'$FM/train-images-idx3-ubyte.gz', '$FM/train-labels-idx1-ubyte.gz'"
	test="'$FM/t10k-images-idx3-ubyte.gz', '$FM/t10k-labels-idx1-ubyte.gz'"
	data="Fashion-MNIST"
else
	train="'mlcnn_test_data/synth/train-images-idx3-ubyte.gz', 'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz'"
	test="'mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz', 'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz'"
	data="the synthetic set"
fi
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
for n in 1 2; do
	port=$((PGPORT + n))
	"${PSQL[@]}" -p "$port" -d postgres -c 'SET client_min_messages = warning' \
		-c 'DROP DATABASE IF EXISTS mlcnn_shard' -c 'CREATE DATABASE mlcnn_shard' >/dev/null
	"${PSQL[@]}" -p "$port" -d mlcnn_shard >/dev/null <<SQL
CREATE EXTENSION mlcnn;
CREATE TABLE rows AS
  SELECT id, label, pixels, $((n - 1)) AS shard FROM load_idx($train) WHERE id < 4000 AND id % 2 = $((n - 1));
ANALYZE rows;
SQL
done
"${PSQL[@]}" -d "$DB" >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS dist, dist_test CASCADE;
DROP SERVER IF EXISTS shard1, shard2 CASCADE;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$PGHOST', port '$((PGPORT + 1))', dbname 'mlcnn_shard', extensions 'mlcnn', async_capable 'true');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$PGHOST', port '$((PGPORT + 2))', dbname 'mlcnn_shard', extensions 'mlcnn', async_capable 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user '$PGUSER');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user '$PGUSER');
CREATE TABLE dist (id integer, label integer, pixels bytea, shard integer) PARTITION BY LIST (shard);
CREATE FOREIGN TABLE dist_s1 PARTITION OF dist FOR VALUES IN (0) SERVER shard1 OPTIONS (table_name 'rows');
CREATE FOREIGN TABLE dist_s2 PARTITION OF dist FOR VALUES IN (1) SERVER shard2 OPTIONS (table_name 'rows');
CREATE TABLE dist_test AS SELECT * FROM load_idx($test) WHERE id < 1000;
SQL
echo "# data: $data; shards on ports $((PGPORT + 1)) and $((PGPORT + 2))"
set +e
out=$(pg_prove --verbose -d "$DB" test/distributed/fdw.sql 2>&1)
rc=$?
set -e
echo "$out"
ok=$(printf '%s\n' "$out" | grep -Ec '^ok [0-9]+' || true)
notok=$(printf '%s\n' "$out" | grep -Ec '^not ok [0-9]+' || true)
planned=$(printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' | head -n 1)
missing=$((${planned:-0} - ok - notok))
[ "$missing" -gt 0 ] || missing=0
[ "$rc" -eq 0 ] || [ $((notok + missing)) -gt 0 ] || missing=1
"${PSQL[@]}" -d "$DB" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS dist, dist_test CASCADE' \
	-c 'DROP SERVER IF EXISTS shard1, shard2 CASCADE' >/dev/null
bash scripts/db.sh shards-stop >/dev/null
echo "$ok passed, $((notok + missing)) failed"
