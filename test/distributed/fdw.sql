-- pgTAP: training and evaluation across servers, through postgres_fdw
-- foreign partitions (test/distributed/fdw.sh sets up the two shard servers
-- and the partitioned table "dist"). The rows stay on their servers: every
-- mlcnn aggregate over a shard is pushed down whole (Relations: Aggregate
-- on ...) and returns one row, a model or a partial result; the shards'
-- servers run at the same time (Async Foreign Scan). train_distributed
-- reaches the accuracy of train_conv2d on the same rows in one place within
-- 1.5 points at equal epochs; evaluate's partials combine to the local
-- result exactly, compute_gradients' within float rounding.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(17);

\set o '{"layers": "conv(8,3) relu maxpool(2) flatten dense(10)", "batch_size": 32, "learning_rate": 0.003, "lr_schedule": "constant", "validation_fraction": 0.1, "record_times": false}'
CREATE FUNCTION pg_temp.explained(q text, run boolean) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE format('EXPLAIN (VERBOSE, COSTS OFF%s) %s', CASE WHEN run THEN ', ANALYZE, TIMING OFF' ELSE '' END, q) LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END
$$;

-- ------------------------------------------------------------- the rows stay where they are
SELECT is((SELECT count(*)::int FROM dist), 4000, 'the coordinator sees 4,000 rows in two foreign partitions');
SELECT matches(pg_temp.explained(format('SELECT train_conv2d(pixels, label, %L::jsonb, NULL::bytea) FROM dist_s1', :'o'), false),
	'Foreign Scan.*Relations: Aggregate on \(public\.dist_s1\).*Remote SQL: SELECT public\.train_conv2d\(',
	'train_conv2d over a foreign partition is pushed down whole to its server');
CREATE TEMP TABLE round_plan AS
	SELECT pg_temp.explained(format(
		'SELECT train_conv2d(pixels, label, %1$L::jsonb, NULL::bytea) FROM dist_s1 UNION ALL SELECT train_conv2d(pixels, label, %1$L::jsonb, NULL::bytea) FROM dist_s2',
		jsonb_set(:'o', '{epochs}', '1')), true) AS p;
SELECT is((SELECT count(*)::int FROM regexp_matches((SELECT p FROM round_plan), 'Async Foreign Scan', 'g')), 2,
	'a round''s two trainings are asynchronous foreign scans (the shards train at the same time)');
SELECT is((SELECT count(*)::int FROM regexp_matches((SELECT p FROM round_plan), 'Async Foreign Scan[^\n]*\(actual rows=1 loops=1\)', 'g')), 2,
	'each shard returns one row, its model: the rows stay on their servers');

-- ------------------------------------------------------------- train_distributed
CREATE TEMP TABLE dm AS SELECT train_distributed('dist', :'o'::jsonb || '{"rounds": 3, "local_epochs": 1}') AS model;
CREATE TEMP TABLE local_rows AS SELECT id, label, pixels FROM dist;	-- the baseline needs the rows in one place
CREATE TEMP TABLE lm AS SELECT train_conv2d(pixels, label, :'o'::jsonb || '{"epochs": 3}') AS model FROM local_rows;
CREATE TEMP TABLE acc AS
	SELECT (SELECT (evaluate(model, pixels, label)->>'accuracy')::float8 FROM dm, dist_test) AS dist,
	       (SELECT (evaluate(model, pixels, label)->>'accuracy')::float8 FROM lm, dist_test) AS local;
SELECT diag(format('test accuracy after 3 epochs: train_distributed (2 shards, 3 rounds of 1 epoch) %s, train_conv2d on the same rows in one place %s',
                   dist, local)) FROM acc;
SELECT cmp_ok((SELECT dist FROM acc), '>=', (SELECT local - 0.015 FROM acc),
	'train_distributed reaches train_conv2d''s accuracy within 1.5 points at equal epochs');
SELECT is((SELECT model_info(model)->'distributed'->>'shards' FROM dm), '2', 'model_info records the shards');
SELECT is((SELECT jsonb_array_length(model_info(model)->'distributed'->'rounds') FROM dm), 3, 'and every round');
SELECT ok((SELECT bool_and((r->>'shards_trained')::int = 2 AND (r->>'rows')::int = 4000 AND (r->>'validation_accuracy')::float8 > 0)
           FROM dm, jsonb_array_elements(model_info(model)->'distributed'->'rounds') r),
	'every round: both shards trained on their 4,000 rows, with a validation accuracy');
SELECT is((SELECT train_distributed('dist', :'o'::jsonb || '{"rounds": 3, "local_epochs": 1}')), (SELECT model FROM dm),
	'a fixed shard layout gives the same model bytes');
SELECT is((SELECT model_info(train_distributed('local_rows', :'o'::jsonb || '{"rounds": 1, "local_epochs": 1}'))->'distributed'->>'shards'),
	'1', 'a plain table is one shard');

-- ------------------------------------------------------------- evaluate and compute_gradients across the shards
CREATE TEMP TABLE parts AS
	SELECT (SELECT evaluate_combine(p) FROM (
	          SELECT evaluate_partial((SELECT model FROM lm), pixels, label) AS p FROM dist_s1
	          UNION ALL SELECT evaluate_partial((SELECT model FROM lm), pixels, label) FROM dist_s2) x) AS e,
	       (SELECT compute_gradients_combine(p) FROM (
	          SELECT compute_gradients_partial((SELECT model FROM lm), pixels, label) AS p FROM dist_s1
	          UNION ALL SELECT compute_gradients_partial((SELECT model FROM lm), pixels, label) FROM dist_s2) x) AS g;
SELECT matches(pg_temp.explained('SELECT evaluate_partial((SELECT model FROM lm), pixels, label) FROM dist_s1', false),
	'Relations: Aggregate on \(public\.dist_s1\).*Remote SQL: SELECT public\.evaluate_partial\(\$1::bytea',
	'evaluate_partial is pushed down to the shard''s server with the model as a parameter');
SELECT is((SELECT e FROM parts), (SELECT evaluate(model, pixels, label) FROM lm, local_rows),
	'evaluate across the shards equals evaluate over the same rows in one place, exactly');
SELECT is((SELECT model_info(g)->'gradient_rows' FROM parts), '4000'::jsonb, 'compute_gradients across the shards counts the 4,000 rows');
SELECT cmp_ok((SELECT max(abs(a - b)) FROM parts, model_weights(g) x
               JOIN model_weights((SELECT compute_gradients(model, pixels, label) FROM lm, local_rows)) y USING (layer, name),
               unnest(x.weights, y.weights) u(a, b))::float8, '<', 1e-6::float8,
	'and its mean gradient is the local one within float rounding');

-- ------------------------------------------------------------- bad calls
SELECT throws_ok($$SELECT train_distributed('dist', '{"pixels_column": "image"}')$$, '42703', NULL, 'a missing column is named');
SELECT throws_ok($$SELECT train_distributed('dist', '{"normalize": "zscore"}')$$, '22023', NULL,
	'zscore (statistics of each shard''s own) is refused');
SELECT throws_ok($$SELECT train_distributed('dist', '{"epochs": 3}')$$, '22023', NULL, 'epochs is local_epochs per round');

SELECT * FROM finish();
ROLLBACK;
