-- pgTAP: the same rows, options and seed give the same model, byte for byte
-- (with "record_times": false), whatever the physical row order and whatever
-- the plan (serial, or a parallel plan whose workers each buffer a share of
-- the rows and hand it over serialised). With recorded times the weights are
-- still equal and only the times differ.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(16);

-- every source of randomness is used: dropout masks, the hold-out split,
-- the epoch shuffles, the initial weights; zscore statistics are a sum
-- over the rows, so their order matters too. As psql variables, so that the
-- parallel queries below carry the options as constants (a column of a
-- temporary table would make the aggregate run above the Gather, unsplit).
\set o '{"layers": "conv(4,3) relu maxpool(2) dropout(0.25) flatten dense(10)", "epochs": 2, "batch_size": 50, "validation_fraction": 0.1, "normalize": "zscore", "seed": 5, "record_times": false}'
\set timed '{"layers": "conv(4,3) relu maxpool(2) dropout(0.25) flatten dense(10)", "epochs": 2, "batch_size": 50, "validation_fraction": 0.1, "normalize": "zscore", "seed": 5}'
CREATE TEMP TABLE opts AS SELECT :'o'::jsonb AS o, :'timed'::jsonb AS timed;

-- the same 2,000 rows in id order and in a random order; regular tables,
-- since parallel workers cannot read temporary ones
CREATE TABLE det_ordered AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz') ORDER BY id;
CREATE TABLE det_shuffled AS SELECT * FROM det_ordered ORDER BY random();
ALTER TABLE det_shuffled SET (parallel_workers = 2);
ANALYZE det_ordered;
ANALYZE det_shuffled;

SELECT ok((SELECT array_agg(id) FROM (SELECT id FROM det_shuffled LIMIT 50) s) <>
          (SELECT array_agg(id) FROM (SELECT id FROM det_ordered LIMIT 50) s),
	'the two tables hold the rows in different physical orders');

-- serial plans
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial AS
	SELECT (SELECT train_conv2d(pixels, label, o) FROM det_ordered) AS ordered,
	       (SELECT train_conv2d(pixels, label, o) FROM det_shuffled) AS shuffled,
	       (SELECT train_conv2d(pixels, label, o || '{"seed": 6}') FROM det_ordered) AS seed6,
	       (SELECT train_conv2d(pixels, label, timed) FROM det_ordered) AS timed1,
	       (SELECT train_conv2d(pixels, label, timed) FROM det_shuffled) AS timed2
	FROM opts;

SELECT ok(ordered = shuffled, 'id order and random order give byte-identical models')
FROM serial;
SELECT ok(ordered <> seed6, 'another seed gives another model (the comparison has power)')
FROM serial;
SELECT ok(NOT EXISTS (SELECT FROM model_weights(ordered) a JOIN model_weights(seed6) b USING (name)
                      WHERE a.weights = b.weights),
	'another seed changes every tensor')
FROM serial;

-- recorded times: equal weights, equal everything but the seconds
SELECT ok(NOT EXISTS (SELECT FROM model_weights(timed1) a FULL JOIN model_weights(timed2) b USING (name)
                      WHERE a.weights IS DISTINCT FROM b.weights),
	'with record_times the weights are still equal')
FROM serial;
CREATE FUNCTION pg_temp.untimed(info jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT info - 'training_seconds' - 'size_bytes'
	       || jsonb_build_object('history',
	            (SELECT jsonb_agg(e - 'seconds' ORDER BY (e->>'epoch')::int)
	             FROM jsonb_array_elements(info->'history') e))
$$;
SELECT is(pg_temp.untimed(model_info(timed1)), pg_temp.untimed(model_info(timed2)),
	'with record_times the models differ only in their times')
FROM serial;
SELECT ok((model_info(timed1)->>'training_seconds')::float8 > 0 AND
          (model_info(timed2)->>'training_seconds')::float8 > 0,
	'with record_times the training seconds are recorded')
FROM serial;
SELECT is(pg_temp.untimed(model_info(timed1)) - 'options',
          pg_temp.untimed(model_info(ordered)) - 'options',
	'record_times changes nothing but the times and the option itself')
FROM serial;

-- a parallel plan: each worker buffers part of the rows, and hands its
-- partial state over serialised to the leader, which combines them.
-- pg_temp.parallel(t, q) runs CREATE TEMP TABLE t AS q under EXPLAIN ANALYZE
-- and returns the plan, so the plan checked is the one that ran.
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.parallel(t text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) CREATE TEMP TABLE %I AS %s', t, q) LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END
$$;
CREATE TEMP TABLE plans AS
	SELECT 'shuffled' AS t, pg_temp.parallel('par_shuffled',
		$$SELECT train_conv2d(pixels, label, '$$ || :'o' || $$') AS m FROM det_shuffled$$) AS plan
	UNION ALL
	SELECT 'timed', pg_temp.parallel('par_timed',
		$$SELECT train_conv2d(pixels, label, '$$ || :'timed' || $$') AS m FROM det_shuffled$$);
SELECT matches(plan, 'Finalize Aggregate.*Gather.*Partial Aggregate.*Parallel Seq Scan on det_shuffled',
	'EXPLAIN shows a Finalize Aggregate over a Gather of Partial Aggregates over a parallel scan')
FROM plans WHERE t = 'shuffled';
-- how many workers ran (a busy server may launch none; the leader's own
-- partial state still goes through serialise, deserialise and combine)
SELECT diag('parallel training: ' || regexp_replace(substring(plan FROM 'Workers Planned.*Launched: \d+'), '\s+', ' ', 'g'))
FROM plans WHERE t = 'shuffled';
SELECT matches(plan, 'Partial Aggregate', 'and so does the plan of the timed training')
FROM plans WHERE t = 'timed';
SELECT ok((SELECT m FROM par_shuffled) = ordered, 'a parallel plan gives the bytes of the serial plan')
FROM serial;
SELECT ok(NOT EXISTS (SELECT FROM model_weights((SELECT m FROM par_timed)) a
                      FULL JOIN model_weights(timed1) b USING (name)
                      WHERE a.weights IS DISTINCT FROM b.weights),
	'a parallel plan with record_times gives the weights of the serial plan')
FROM serial;
SELECT is(model_info(m)->'rows_trained', '2000'::jsonb, 'the parallel plan trained on every row once')
FROM par_shuffled;

-- NULL rows and continued training survive the hand-over too; the initial
-- model goes in as a constant
CREATE TABLE det_nulls AS
	SELECT id, CASE WHEN id % 100 = 0 THEN NULL ELSE pixels END AS pixels,
	       CASE WHEN id % 100 = 1 THEN NULL ELSE label END AS label
	FROM det_shuffled;
ALTER TABLE det_nulls SET (parallel_workers = 2);
ANALYZE det_nulls;
SELECT encode(ordered, 'hex') AS init_hex FROM serial \gset
INSERT INTO plans
	SELECT 'nulls', pg_temp.parallel('par_nulls',
		$$SELECT train_conv2d(pixels, label, '$$ || :'o' || $$') AS m FROM det_nulls$$)
	UNION ALL
	SELECT 'continued', pg_temp.parallel('par_continued',
		$$SELECT train_conv2d(pixels, label, '$$ || :'o' || $$', decode('$$ || :'init_hex' || $$', 'hex')) AS m
		  FROM det_nulls$$);
SELECT ok(bool_and(plan ~ 'Partial Aggregate'), 'both ran as partial aggregates')
FROM plans WHERE t IN ('nulls', 'continued');
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial2 AS
	SELECT (SELECT train_conv2d(pixels, label, o) FROM det_nulls) AS nulls,
	       (SELECT train_conv2d(pixels, label, o, (SELECT ordered FROM serial)) FROM det_nulls) AS continued
	FROM opts;
SELECT ok((SELECT m FROM par_nulls) = nulls AND model_info(nulls)->'rows_skipped' = '40'::jsonb,
	'with NULL rows: the same bytes, and all 40 skipped rows counted, in parallel')
FROM serial2;
SELECT ok((SELECT m FROM par_continued) = continued AND continued <> nulls,
	'continued training (init_model) gives the same bytes in parallel')
FROM serial2;

SELECT * FROM finish();
ROLLBACK;
