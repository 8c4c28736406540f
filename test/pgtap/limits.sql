-- pgTAP: the limits of the hostile-models issue that need no forged model.
--   * mlcnn.max_train_memory counts every mlcnn aggregate state of the
--     backend together: six train_conv2d calls in one SELECT cannot buffer
--     six copies of the rows under a budget that holds two, and a failed
--     statement gives every byte of the account back;
--   * mlcnn.max_inference_memory: superuser-only; evaluate shrinks its
--     batch to fit and gives the same figures; one image over it is 54000;
--   * an init_model that differs between rows is 22023, in serial and
--     parallel plans; the same model on every row (a join) trains;
--   * the aggregates refuse to run as window functions (0A000);
--   * a parallel plan takes rows over 16 MiB (18 MB here) and trains the
--     bytes of the serial plan.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn,
-- as a superuser. Test data: mlcnn_test_data/synth.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(24);

CREATE TEMP TABLE lim_rows AS
SELECT id, label, pixels
FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
              'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');

\set small '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 64, "record_times": false}'

-- ------------------------------------------------- one budget for all states
-- each training state buffers its rows in chunks of 4 MB, so one training
-- of these 2,000 rows takes about 4.5 MB with its working memory
SET LOCAL mlcnn.max_train_memory = '12MB';
SELECT lives_ok($$SELECT train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1}') FROM lim_rows$$,
	'one training fits a 12 MB budget');
SELECT throws_like(
	$$SELECT train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 1}'),
	         train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 2}'),
	         train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 3}'),
	         train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 4}'),
	         train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 5}'),
	         train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 6}')
	  FROM lim_rows$$,
	'%more than mlcnn.max_train_memory (12288 kB)%',
	'six trainings in one SELECT share the budget: not every copy of the rows fits');
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
SELECT is(pg_temp.sqlstate_of($$SELECT train_conv2d(pixels, label, '{"seed": 1}'), train_conv2d(pixels, label, '{"seed": 2}'),
	train_conv2d(pixels, label, '{"seed": 3}') FROM lim_rows$$), '54000', 'with SQLSTATE 54000');
SELECT lives_ok($$SELECT train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1}'),
	         train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1, "seed": 2}') FROM lim_rows$$,
	'after the failures every byte is back: two trainings fit again');
RESET mlcnn.max_train_memory;

-- ------------------------------------------------------- inference budget
CREATE TEMP TABLE lim_model AS
SELECT train_conv2d(pixels, label, :'small') AS m FROM lim_rows;
CREATE TEMP TABLE lim_eval AS
SELECT evaluate(m, pixels, label) AS e FROM lim_rows, lim_model;

CREATE ROLE mlcnn_lim_plain;
GRANT SELECT ON lim_rows, lim_model TO mlcnn_lim_plain;
SET LOCAL ROLE mlcnn_lim_plain;
SELECT is(pg_temp.sqlstate_of($$SET mlcnn.max_inference_memory = '1GB'$$), '42501',
	'a plain role cannot change mlcnn.max_inference_memory');
SELECT is(pg_temp.sqlstate_of($$SET mlcnn.max_train_memory = '10GB'$$), '42501',
	'nor mlcnn.max_train_memory');
SELECT is(pg_temp.sqlstate_of($$SET mlcnn.model_cache_memory = '10GB'$$), '42501',
	'nor mlcnn.model_cache_memory');
RESET ROLE;

-- one image of this net takes about 46 kB of working memory: 100 kB holds
-- one image beside the 27 kB of parameters, not the 32 of a full batch
SET LOCAL mlcnn.max_inference_memory = '100kB';
SELECT is((SELECT evaluate(m, pixels, label) FROM lim_rows, lim_model), (SELECT e FROM lim_eval),
	'evaluate in batches shrunk to fit 100 kB gives the same figures');
SELECT is((SELECT count(*)::int FROM lim_rows, lim_model WHERE predict(m, pixels) = label),
	(SELECT (e->>'correct')::int FROM lim_eval), 'and predict agrees with it row by row');
SET LOCAL mlcnn.max_inference_memory = '16kB';
SELECT throws_like($$SELECT predict(m, pixels) FROM lim_rows, lim_model LIMIT 1$$,
	'the model needs % kB for one image, more than mlcnn.max_inference_memory (16 kB)',
	'an image over the inference budget is refused, naming the need and the limit');
SELECT is(pg_temp.sqlstate_of($$SELECT evaluate(m, pixels, label) FROM lim_rows, lim_model$$), '54000',
	'evaluate too, with 54000');
SELECT is(pg_temp.sqlstate_of($$SELECT compute_gradients(m, pixels, label) FROM lim_rows, lim_model$$), '54000',
	'and compute_gradients');
SET LOCAL mlcnn.max_inference_memory = 0;
SELECT is((SELECT evaluate(m, pixels, label) FROM lim_rows, lim_model), (SELECT e FROM lim_eval),
	'0 means no limit');
RESET mlcnn.max_inference_memory;

-- ------------------------------------------------------------- init_model
CREATE TEMP TABLE lim_init AS
SELECT 1 AS k, train_conv2d(pixels, label, :'small') AS m FROM lim_rows WHERE id < 1000
UNION ALL
SELECT 2, train_conv2d(pixels, label, :'small') FROM lim_rows WHERE id >= 1000;
SELECT throws_ok(
	$$SELECT train_conv2d(r.pixels, r.label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1}', i.m)
	  FROM lim_rows r JOIN lim_init i ON i.k = 1 + r.id % 2$$,
	'22023', 'train_conv2d''s init_model must be the same model on every row',
	'an init_model that differs between rows is an error');
SELECT lives_ok(
	$$SELECT train_conv2d(r.pixels, r.label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1}', i.m)
	  FROM lim_rows r JOIN lim_init i ON i.k = 1$$,
	'the same init_model on every row (a join) trains');
SELECT is(
	(SELECT train_conv2d(r.pixels, r.label, :'small', i.m) FROM lim_rows r JOIN lim_init i ON i.k = 1),
	(SELECT train_conv2d(r.pixels, r.label, :'small', (SELECT m FROM lim_init WHERE k = 1)) FROM lim_rows r),
	'a joined init_model and a scalar subquery give the same model');

-- ---------------------------------------------------------------- windows
SELECT throws_ok($$SELECT evaluate(m, pixels, label) OVER (ORDER BY id) FROM lim_rows, lim_model$$,
	'0A000', 'evaluate cannot be used as a window function', 'evaluate refuses a window');
SELECT throws_ok($$SELECT compute_gradients(m, pixels, label) OVER () FROM lim_rows, lim_model$$,
	'0A000', 'compute_gradients cannot be used as a window function', 'compute_gradients refuses a window');
SELECT throws_ok($$SELECT train_conv2d(pixels, label) OVER (PARTITION BY label) FROM lim_rows$$,
	'0A000', 'train_conv2d cannot be used as a window function', 'train_conv2d refuses a window');

-- ----------------------------------------- 18 MB rows, serial and parallel
-- regular tables: parallel workers cannot read temporary ones; the options
-- are constants so that the aggregate is split below the Gather
CREATE TABLE lim_big (id int, label int, pixels bytea);
ALTER TABLE lim_big ALTER pixels SET STORAGE EXTERNAL;
ALTER TABLE lim_big SET (parallel_workers = 2);
INSERT INTO lim_big
SELECT i, i % 2, convert_to(repeat(chr(65 + i), 18000000), 'SQL_ASCII') FROM generate_series(0, 3) i;
-- and rows without pixels (skipped), so that the table has enough pages
-- for the planner to aggregate in the workers rather than gather 4 rows
INSERT INTO lim_big SELECT i, 0, NULL FROM generate_series(4, 30000) i;
ANALYZE lim_big;
\set big '{"input": [3000, 2000, 3], "layers": "maxpool(40) dense(2)", "classes": 2, "epochs": 1, "batch_size": 2, "record_times": false}'

SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE lim_big_serial AS SELECT train_conv2d(pixels, label, :'big') AS m FROM lim_big;

SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
CREATE FUNCTION pg_temp.explained(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ' || q LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END
$$;
CREATE TEMP TABLE lim_big_plan AS
SELECT pg_temp.explained($$CREATE TEMP TABLE lim_big_par AS SELECT train_conv2d(pixels, label, '$$ || :'big' || $$') AS m FROM lim_big$$) AS plan;
SELECT matches(plan, 'Finalize Aggregate.*Gather.*Partial Aggregate.*Parallel Seq Scan on lim_big',
	'the 18 MB rows go through a parallel plan (partial aggregates in the workers)')
FROM lim_big_plan;
SELECT diag('18 MB rows: ' || regexp_replace(substring(plan FROM 'Workers Planned.*Launched: \d+'), '\s+', ' ', 'g'))
FROM lim_big_plan;
SELECT is((SELECT m FROM lim_big_par), (SELECT m FROM lim_big_serial),
	'rows of 18 MB: the parallel plan trains the bytes of the serial plan');
SELECT is(model_info((SELECT m FROM lim_big_par))->'rows_trained', '4'::jsonb, 'on all four rows (the others skipped)');
SET LOCAL max_parallel_workers_per_gather = 0;

-- a differing init_model is caught in the parallel plan too (the workers'
-- states meet in the combine function); two regular tables again
CREATE TABLE lim_par_rows AS SELECT * FROM lim_rows;
CREATE TABLE lim_par_init AS SELECT * FROM lim_init;
ALTER TABLE lim_par_rows SET (parallel_workers = 2);
ANALYZE lim_par_rows;
ANALYZE lim_par_init;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT is(pg_temp.sqlstate_of(
	$$SELECT train_conv2d(r.pixels, r.label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1}', i.m)
	  FROM lim_par_rows r JOIN lim_par_init i ON i.k = 1 + r.id % 2$$),
	'22023', 'a differing init_model is 22023 in a parallel plan');
SELECT is(pg_temp.sqlstate_of(
	$$SELECT train_conv2d(r.pixels, r.label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1}', i.m)
	  FROM lim_par_rows r JOIN lim_par_init i ON i.k = 1$$),
	'ok', 'and the same init_model on every row trains in parallel');
SET LOCAL max_parallel_workers_per_gather = 0;

SELECT * FROM finish();
ROLLBACK;
