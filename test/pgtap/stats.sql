-- pgTAP: the mlcnn_stats view, its function and mlcnn_stats_reset().
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn;
-- paths are relative to the data directory (mlcnn_test_data -> build/testdata).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(29);

SET LOCAL max_parallel_workers_per_gather = 0;

-- the objects and their declared labels
SELECT has_view('mlcnn_stats', 'view mlcnn_stats exists');
SELECT columns_are('mlcnn_stats',
	ARRAY['function', 'calls', 'rows', 'total_ms', 'forward_ms', 'backward_ms',
	      'update_ms', 'loss_ms', 'peak_memory_bytes'],
	'mlcnn_stats has the documented columns');
SELECT col_type_is('mlcnn_stats', 'function', 'text', 'function is text');
SELECT col_type_is('mlcnn_stats', 'calls', 'bigint', 'calls is bigint');
SELECT col_type_is('mlcnn_stats', 'rows', 'bigint', 'rows is bigint');
SELECT col_type_is('mlcnn_stats', 'total_ms', 'double precision', 'total_ms is float8');
SELECT col_type_is('mlcnn_stats', 'loss_ms', 'double precision', 'loss_ms is float8');
SELECT col_type_is('mlcnn_stats', 'peak_memory_bytes', 'bigint', 'peak_memory_bytes is bigint');
SELECT has_function('mlcnn_stats', ARRAY[]::text[], 'mlcnn_stats() exists');
SELECT has_function('mlcnn_stats_reset', ARRAY[]::text[], 'mlcnn_stats_reset() exists');
SELECT volatility_is('mlcnn_stats', ARRAY[]::text[], 'volatile',
	'mlcnn_stats() is VOLATILE: it changes while a query runs');
SELECT volatility_is('mlcnn_stats_reset', ARRAY[]::text[], 'volatile', 'mlcnn_stats_reset() is VOLATILE');
SELECT is((SELECT array_agg(proparallel::text ORDER BY proname) FROM pg_proc
           WHERE proname IN ('mlcnn_stats', 'mlcnn_stats_reset')
             AND pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'mlcnn')),
	ARRAY['r', 'r'], 'both are PARALLEL RESTRICTED: backend-local state');
SELECT ok(obj_description('mlcnn_stats'::regclass, 'pg_class') IS NOT NULL
          AND obj_description('mlcnn_stats()'::regprocedure, 'pg_proc') IS NOT NULL
          AND obj_description('mlcnn_stats_reset()'::regprocedure, 'pg_proc') IS NOT NULL,
	'the view and both functions have comments');

-- data: 200 rows of 28x28 = 784 bytes
CREATE TEMP TABLE st_rows AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz')
	WHERE id < 200;

-- a reset empties the view
DO $$ BEGIN PERFORM mlcnn_stats_reset(); END $$;
SELECT is_empty('SELECT * FROM mlcnn_stats', 'after mlcnn_stats_reset() the view is empty');

-- training: one call over 200 rows, timed from outside
CREATE TEMP TABLE st_clock(t0 timestamptz, t1 timestamptz);
INSERT INTO st_clock(t0) VALUES (clock_timestamp());
CREATE TEMP TABLE st_model AS
	SELECT train_conv2d(pixels, label, '{"epochs":1,"batch_size":50}') AS m FROM st_rows;
UPDATE st_clock SET t1 = clock_timestamp();

CREATE TEMP TABLE st_train AS SELECT * FROM mlcnn_stats WHERE function = 'train_conv2d';
SELECT is((SELECT calls FROM st_train), 1::bigint, 'train_conv2d: 1 call');
SELECT is((SELECT rows FROM st_train), 200::bigint, 'train_conv2d: 200 rows');
SELECT ok((SELECT forward_ms > 0 AND backward_ms > 0 AND update_ms > 0 AND loss_ms >= 0 FROM st_train),
	'train_conv2d: time in forward, backward and update');
SELECT cmp_ok((SELECT forward_ms + backward_ms + update_ms + loss_ms FROM st_train),
	'<=', (SELECT total_ms FROM st_train), 'train_conv2d: the phases fit in the total');
SELECT cmp_ok((SELECT total_ms FROM st_train),
	'<=', (SELECT 1000 * extract(epoch FROM t1 - t0)::float8 FROM st_clock),
	'train_conv2d: total_ms <= the wall-clock time of the statement');
SELECT cmp_ok((SELECT peak_memory_bytes FROM st_train),
	'>=', (SELECT sum(length(pixels) + 4)::bigint FROM st_rows),
	'train_conv2d: peak memory >= the buffered rows (pixels + 4-byte label each)');

-- predict: one call per row; sums accumulate over statements
DO $$ BEGIN PERFORM count(predict(m, pixels)) FROM st_rows, st_model WHERE id < 50; END $$;
DO $$ BEGIN PERFORM count(predict(m, pixels)) FROM st_rows, st_model WHERE id < 25; END $$;
CREATE TEMP TABLE st_pred AS SELECT * FROM mlcnn_stats WHERE function = 'predict';
SELECT is((SELECT calls || '/' || rows FROM st_pred), '75/75', 'predict: 50 + 25 calls and rows');
SELECT ok((SELECT backward_ms = 0 AND update_ms = 0 AND forward_ms > 0 AND forward_ms <= total_ms FROM st_pred),
	'predict: forward time only, within the total');
SELECT cmp_ok((SELECT peak_memory_bytes FROM st_pred), '>', 0::bigint, 'predict: peak memory is reported');
SELECT is((SELECT array_agg(function ORDER BY function) FROM mlcnn_stats),
	ARRAY['predict', 'train_conv2d'], 'only the functions called appear');

-- evaluate (an aggregate over the model and rows)
DO $$ BEGIN PERFORM evaluate(m, pixels, label) FROM st_rows, st_model; END $$;
SELECT is((SELECT calls || '/' || rows FROM mlcnn_stats WHERE function = 'evaluate'), '1/200',
	'evaluate: one call over 200 rows');

-- EXPLAIN ANALYZE is ordinary execution: it adds to the view too
DO $$ BEGIN EXECUTE 'EXPLAIN (ANALYZE) SELECT predict(m, pixels) FROM st_rows, st_model WHERE id < 10'; END $$;
SELECT is((SELECT calls FROM mlcnn_stats WHERE function = 'predict'), 85::bigint,
	'EXPLAIN ANALYZE counts in the view: 75 + 10 calls');

-- reset again: empty, and counting starts from zero
DO $$ BEGIN PERFORM mlcnn_stats_reset(); END $$;
SELECT is_empty('SELECT * FROM mlcnn_stats', 'reset empties the view again');
DO $$ BEGIN PERFORM count(predict(m, pixels)) FROM st_rows, st_model WHERE id < 5; END $$;
SELECT is((SELECT calls FROM mlcnn_stats WHERE function = 'predict'), 5::bigint, 'after the reset: 5 calls');

SELECT * FROM finish();
ROLLBACK;
