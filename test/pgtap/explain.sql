-- pgTAP: the mlcnn section of EXPLAIN ANALYZE, read back from FORMAT JSON
-- (and XML) and checked for sane figures, not only for presence.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn;
-- paths are relative to the data directory (mlcnn_test_data -> build/testdata).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

-- the EXPLAIN hook must be in place before the first EXPLAIN (see explain.c)
LOAD 'mlcnn';

BEGIN;
SELECT plan(42);

SET LOCAL max_parallel_workers_per_gather = 0;

-- 300 rows of 28x28 = 784 bytes from the synthetic training set
CREATE TEMP TABLE ex_rows AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz')
	WHERE id < 300;

-- EXPLAIN (options) of q as jsonb: the first (only) query's object
CREATE FUNCTION pg_temp.explain_json(q text, opts text DEFAULT 'ANALYZE')
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	j json;
BEGIN
	EXECUTE format('EXPLAIN (%s, FORMAT JSON) %s', opts, q) INTO j;
	RETURN (j::jsonb)->0;
END
$$;

-- the mlcnn entry of function fn in an explain_json result
CREATE FUNCTION pg_temp.fn_entry(e jsonb, fn text)
RETURNS jsonb LANGUAGE sql AS $$
	SELECT f FROM jsonb_array_elements(e->'mlcnn'->'Functions') f
	WHERE f->>'Function Name' = fn
$$;

-- ---------------------------------------------------------------- training
CREATE TEMP TABLE ex_train AS
	SELECT pg_temp.explain_json(
		$q$SELECT train_conv2d(pixels, label, '{"epochs":2,"batch_size":32}') FROM ex_rows$q$) AS e;
CREATE TEMP TABLE ex_t AS
	SELECT e, pg_temp.fn_entry(e, 'train_conv2d') AS f FROM ex_train;

SELECT ok((SELECT e ? 'mlcnn' FROM ex_t), 'EXPLAIN ANALYZE of train_conv2d has an mlcnn section');
SELECT is((SELECT jsonb_array_length(e->'mlcnn'->'Functions') FROM ex_t), 1,
	'one mlcnn function was called');
SELECT is((SELECT (f->>'Calls')::int FROM ex_t), 1, 'train_conv2d: one call (one group)');
SELECT is((SELECT (f->>'Rows')::bigint FROM ex_t),
	(SELECT (e->'Plan'->'Plans'->0->>'Actual Rows')::bigint FROM ex_t),
	'train_conv2d: rows equal the rows the scan fed the aggregate');
SELECT is((SELECT (f->>'Rows')::bigint FROM ex_t), (SELECT count(*) FROM ex_rows),
	'train_conv2d: rows equal the table''s');
SELECT is((SELECT (f->>'Epochs')::int FROM ex_t), 2, 'train_conv2d: the epochs asked for');
-- 2 epochs of ceil(300 / 32) = 10 batches each
SELECT is((SELECT (f->>'Batches')::int FROM ex_t), 20, 'train_conv2d: epochs * ceil(rows / batch_size) batches');
-- images per second * seconds = images trained = epochs * rows
SELECT cmp_ok((SELECT abs((f->>'Images Per Second')::float8 * (f->>'Total Time')::float8 / 1000 - 600)
               FROM ex_t), '<', 1.0::float8,
	'train_conv2d: images/s times the total time gives epochs * rows images');
SELECT ok((SELECT (f->>'Forward Time')::float8 > 0 AND (f->>'Backward Time')::float8 > 0
               AND (f->>'Update Time')::float8 > 0 AND (f->>'Loss Time')::float8 >= 0 FROM ex_t),
	'train_conv2d: forward, backward and update took time');
SELECT cmp_ok((SELECT (f->>'Forward Time')::float8 + (f->>'Backward Time')::float8
                    + (f->>'Update Time')::float8 + (f->>'Loss Time')::float8 FROM ex_t),
	'<=', (SELECT (f->>'Total Time')::float8 FROM ex_t),
	'train_conv2d: the phases add up to no more than the total');
SELECT cmp_ok((SELECT (f->>'Total Time')::float8 FROM ex_t),
	'<=', (SELECT (e->>'Execution Time')::float8 FROM ex_t),
	'train_conv2d: mlcnn total time <= EXPLAIN''s Execution Time');
SELECT cmp_ok((SELECT (f->>'Total Time')::float8 FROM ex_t),
	'<=', (SELECT (e->'Plan'->>'Actual Total Time')::float8 FROM ex_t),
	'train_conv2d: mlcnn total time <= the Aggregate node''s time');
SELECT cmp_ok((SELECT (f->>'Peak Memory')::bigint * 1024 FROM ex_t),
	'>=', (SELECT sum(length(pixels) + 4)::bigint FROM ex_rows),
	'train_conv2d: peak memory holds at least the buffered rows (pixels + 4-byte label each)');
SELECT cmp_ok((SELECT (e->'mlcnn'->>'Backend Peak Memory Growth')::bigint FROM ex_t),
	'>=', 0::bigint, 'backend peak memory growth is reported and not negative');
SELECT ok((SELECT f ? 'Images Per Second' FROM ex_t), 'train_conv2d: images per second is reported');

-- ---------------------------------------------------------------- predict
CREATE TEMP TABLE ex_model AS
	SELECT train_conv2d(pixels, label, '{"epochs":1}') AS m FROM ex_rows;
CREATE TEMP TABLE ex_p AS
	SELECT e, pg_temp.fn_entry(e, 'predict') AS f
	FROM (SELECT pg_temp.explain_json('SELECT predict(m, pixels) FROM ex_rows, ex_model') e) x;

SELECT ok((SELECT f IS NOT NULL FROM ex_p), 'EXPLAIN ANALYZE of predict has a predict entry');
SELECT is((SELECT (f->>'Calls')::bigint FROM ex_p),
	(SELECT (e->'Plan'->>'Actual Rows')::bigint FROM ex_p),
	'predict: one call per row the query returned');
SELECT is((SELECT (f->>'Rows')::bigint FROM ex_p), 300::bigint, 'predict: 300 rows');
SELECT ok((SELECT NOT (f ? 'Epochs') AND NOT (f ? 'Batches') FROM ex_p),
	'predict: no training figures');
SELECT ok((SELECT (f->>'Backward Time')::float8 = 0 AND (f->>'Update Time')::float8 = 0 FROM ex_p),
	'predict: no backward pass, no update');
SELECT cmp_ok((SELECT (f->>'Forward Time')::float8 FROM ex_p),
	'<=', (SELECT (f->>'Total Time')::float8 FROM ex_p), 'predict: forward <= total');
SELECT cmp_ok((SELECT (f->>'Total Time')::float8 FROM ex_p),
	'<=', (SELECT (e->>'Execution Time')::float8 FROM ex_p),
	'predict: mlcnn total time <= EXPLAIN''s Execution Time');
SELECT cmp_ok((SELECT (f->>'Peak Memory')::bigint FROM ex_p), '>', 0::bigint,
	'predict: peak memory of the inference buffers is reported');

-- a LIMIT stops early: calls follow the rows actually computed
SELECT is((SELECT (pg_temp.fn_entry(pg_temp.explain_json(
		'SELECT predict(m, pixels) FROM ex_rows, ex_model LIMIT 7'), 'predict')->>'Calls')::int),
	7, 'predict under LIMIT 7: 7 calls');

-- two functions in one query: two entries, each with its own count
CREATE TEMP TABLE ex_two AS
	SELECT pg_temp.explain_json(
		'SELECT predict(m, pixels), predict_proba(m, pixels) FROM ex_rows, ex_model WHERE id < 50') AS e;
SELECT is((SELECT array_agg(f->>'Function Name' || '=' || (f->>'Calls'))
           FROM ex_two, jsonb_array_elements(e->'mlcnn'->'Functions') f),
	ARRAY['predict=50', 'predict_proba=50'], 'predict and predict_proba counted apart');

-- ---------------------------------------------------------------- options
SELECT ok(NOT (pg_temp.explain_json('SELECT predict(m, pixels) FROM ex_rows, ex_model', 'ANALYZE false') ? 'mlcnn'),
	'EXPLAIN without ANALYZE adds nothing');
SELECT ok(NOT (pg_temp.explain_json('SELECT count(*) FROM ex_rows') ? 'mlcnn'),
	'a query without mlcnn calls gets no section');
CREATE TEMP TABLE ex_notiming AS
	SELECT pg_temp.fn_entry(pg_temp.explain_json(
		'SELECT predict(m, pixels) FROM ex_rows, ex_model', 'ANALYZE, TIMING false'), 'predict') AS f;
SELECT ok((SELECT f ? 'Calls' AND NOT (f ? 'Total Time') AND NOT (f ? 'Forward Time') FROM ex_notiming),
	'TIMING OFF: counts but no times');
SELECT ok(NOT (pg_temp.explain_json('SELECT predict(m, pixels) FROM ex_rows, ex_model',
                                    'ANALYZE, SUMMARY false')->'mlcnn' ? 'Backend Peak Memory Growth'),
	'SUMMARY OFF: no backend memory growth');

-- XML: the same figures as elements
CREATE TEMP TABLE ex_xml(x xml);
DO $$
DECLARE
	t text;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, FORMAT XML) SELECT predict(m, pixels) FROM ex_rows, ex_model WHERE id < 20' INTO t;
	INSERT INTO ex_xml VALUES (xmlparse(document t));
END
$$;
SELECT is((SELECT (xpath('//e:mlcnn/e:Functions/e:Function/e:Calls/text()', x,
                         ARRAY[ARRAY['e', 'http://www.postgresql.org/2009/explain']]))[1]::text
           FROM ex_xml), '20', 'FORMAT XML: <mlcnn><Functions><Function><Calls>');

-- TEXT: the section comes after the plan and before Execution Time
CREATE TEMP TABLE ex_text(n serial, line text);
DO $$
DECLARE
	l text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE) SELECT predict(m, pixels) FROM ex_rows, ex_model WHERE id < 20' LOOP
		INSERT INTO ex_text(line) VALUES (l);
	END LOOP;
END
$$;
SELECT ok((SELECT max(n) FILTER (WHERE line = 'mlcnn:') < max(n) FILTER (WHERE line LIKE 'Execution Time:%')
               AND max(n) FILTER (WHERE line = 'mlcnn:') > max(n) FILTER (WHERE line LIKE 'Planning Time:%')
           FROM ex_text),
	'TEXT: "mlcnn:" between Planning Time and Execution Time');
SELECT ok(EXISTS (SELECT FROM ex_text WHERE line ~ '^  predict: calls=20 rows=20$'),
	'TEXT: "predict: calls=20 rows=20"');
SELECT ok(EXISTS (SELECT FROM ex_text WHERE line ~ '^    Timing: Forward [0-9.]+ ms, Backward [0-9.]+ ms, Update [0-9.]+ ms, Loss [0-9.]+ ms, Total [0-9.]+ ms$'),
	'TEXT: a Timing line with the four phases and the total');

-- ---------------------------------------------------------------- accounting
-- a reset inside the query does not disturb EXPLAIN's figures
SELECT is((SELECT (pg_temp.fn_entry(pg_temp.explain_json(
		'SELECT predict(m, pixels), mlcnn_stats_reset() FROM ex_rows, ex_model WHERE id < 30'),
		'predict')->>'Calls')::int),
	30, 'mlcnn_stats_reset() inside the query: still 30 calls');

-- EXPLAIN ANALYZE nested in a query that is itself explained: both count the work
CREATE TEMP TABLE ex_nested AS
	SELECT pg_temp.explain_json($q$SELECT pg_temp.explain_json('SELECT predict(m, pixels) FROM ex_rows, ex_model WHERE id < 40')$q$) AS e;
SELECT is((SELECT (pg_temp.fn_entry(e, 'predict')->>'Calls')::int FROM ex_nested), 40,
	'an outer EXPLAIN counts the work of an inner one');

-- the work of a CREATE TABLE AS is explained too, and its rows are the query's
CREATE TEMP TABLE ex_plain AS SELECT id, predict(m, pixels) AS p FROM ex_rows, ex_model;
SELECT is((SELECT (pg_temp.fn_entry(pg_temp.explain_json(
		'CREATE TEMP TABLE ex_ctas AS SELECT id, predict(m, pixels) AS p FROM ex_rows, ex_model'),
		'predict')->>'Calls')::int),
	300, 'EXPLAIN ANALYZE CREATE TABLE AS: 300 calls');
SELECT is_empty('SELECT id, p FROM ex_plain EXCEPT ALL SELECT id, p FROM ex_ctas',
	'results under EXPLAIN ANALYZE equal the plain query''s');

-- ---------------------------------------------------------------- other hooks
-- auto_explain (ExecutorStart/End hooks, loaded after mlcnn) and
-- pg_stat_statements (loaded, inert outside shared_preload_libraries)
LOAD 'pg_stat_statements';
LOAD 'auto_explain';
SET LOCAL auto_explain.log_min_duration = 0;
SET LOCAL auto_explain.log_analyze = on;
SET LOCAL auto_explain.log_nested_statements = on;
SET LOCAL auto_explain.log_level = debug5;

CREATE TEMP TABLE ex_auto AS
	SELECT e, pg_temp.fn_entry(e, 'predict') AS f
	FROM (SELECT pg_temp.explain_json('SELECT predict(m, pixels) FROM ex_rows, ex_model') e) x;
SELECT is((SELECT (f->>'Calls')::int FROM ex_auto), 300, 'with auto_explain: the section is there, 300 calls');
SELECT cmp_ok((SELECT (f->>'Total Time')::float8 FROM ex_auto),
	'<=', (SELECT (e->>'Execution Time')::float8 FROM ex_auto),
	'with auto_explain: mlcnn total <= Execution Time');
CREATE TEMP TABLE ex_train2 AS
	SELECT pg_temp.fn_entry(pg_temp.explain_json(
		$q$SELECT train_conv2d(pixels, label, '{"epochs":1,"batch_size":32}') FROM ex_rows$q$),
		'train_conv2d') AS f;
SELECT is((SELECT (f->>'Calls')::int || '/' || (f->>'Rows') || '/' || (f->>'Batches') FROM ex_train2),
	'1/300/10', 'with auto_explain: train_conv2d calls, rows and batches');
CREATE TEMP TABLE ex_auto_rows AS SELECT id, predict(m, pixels) AS p FROM ex_rows, ex_model;
SELECT is_empty('SELECT id, p FROM ex_plain EXCEPT ALL SELECT id, p FROM ex_auto_rows',
	'with auto_explain: the same predictions');
SELECT is((SELECT count(*)::int FROM ex_auto_rows), 300, 'with auto_explain: all rows');

SELECT * FROM finish();
ROLLBACK;
