-- real[] inputs: every function that takes pixels bytea also takes real[].
-- Rows of pixel/255 as real[] (normalize auto: none) feed the network the
-- very floats that bytea rows under minmax do, and sort into the same
-- canonical order, so they train the same weights; everything after that
-- (predictions, logits, losses, gradients, evaluation) must agree with the
-- bytea forms. Then the type checks and every kind of bad element.
-- The data is the synthetic set of the tests. After each error, the SQLSTATE.
\set SHOW_CONTEXT never
\set small '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1, "learning_rate": 0.01, "record_times": false}'

-- pixel/255 as float4 division (the same IEEE operation as the core's v / 255.0f)
CREATE FUNCTION pg_temp.to_real(b bytea) RETURNS real[] LANGUAGE sql IMMUTABLE STRICT AS $$
	SELECT array_agg(get_byte(b, i)::real / 255::real ORDER BY i) FROM generate_series(0, length(b) - 1) i
$$;
CREATE TEMP TABLE train AS
  SELECT id, label, pixels, pg_temp.to_real(pixels) AS x
  FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz') WHERE id < 1000;
CREATE TEMP TABLE test AS
  SELECT id, label, pixels, pg_temp.to_real(pixels) AS x
  FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz') WHERE id < 200;
CREATE TEMP TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models
  SELECT 'bytea', train_conv2d(pixels, label, :'small') FROM train
  UNION ALL
  SELECT 'real', train_conv2d(x, label, :'small') FROM train;

-- ---------------------------------------------------------------- the model
SELECT name, model_info(model)->>'input_type' AS input_type, model_info(model)->'input' AS input,
       model_info(model)->'normalize' AS normalize, model_info(model)->'options'->>'normalize' AS option
FROM models ORDER BY name;
-- the same weights, tensor by tensor
SELECT count(*) AS tensors, bool_and(a.weights = b.weights) AS same_weights
FROM model_weights((SELECT model FROM models WHERE name = 'bytea')) a
JOIN model_weights((SELECT model FROM models WHERE name = 'real')) b USING (layer, name);
-- and, apart from the input type and the normalisation, the same description
SELECT (SELECT model_info(model) - 'input_type' - 'normalize' - 'size_bytes' - 'options' FROM models WHERE name = 'bytea') =
       (SELECT model_info(model) - 'input_type' - 'normalize' - 'size_bytes' - 'options' FROM models WHERE name = 'real')
         AS same_info;

-- ---------------------------------------------------------------- inference
SELECT count(*) AS rows,
       bool_and(predict(r.model, t.x) = predict(b.model, t.pixels)) AS same_class,
       bool_and(forward_pass(r.model, t.x) = forward_pass(b.model, t.pixels)) AS same_logits,
       bool_and(predict_proba(r.model, t.x) = predict_proba(b.model, t.pixels)) AS same_probabilities,
       bool_and(calculate_loss(r.model, t.x, t.label) = calculate_loss(b.model, t.pixels, t.label)) AS same_loss
FROM test t, models r, models b WHERE r.name = 'real' AND b.name = 'bytea';
-- evaluate: the same counts, accuracy and loss (so within 0.5 points, at 0)
SELECT (SELECT evaluate(model, x, label) FROM test, models WHERE name = 'real') =
       (SELECT evaluate(model, pixels, label) FROM test, models WHERE name = 'bytea') AS same_evaluation,
       (SELECT (evaluate(model, x, label)->>'rows')::int FROM test, models WHERE name = 'real') AS rows;
-- NULL pixels and labels are skipped and counted, as for bytea
SELECT e->'rows' AS rows, e->'skipped' AS skipped
FROM (SELECT evaluate(model, CASE WHEN t.id % 4 = 0 THEN NULL ELSE x END, label) AS e
      FROM test t, models WHERE name = 'real') s;
-- compute_gradients: the same mean gradient; update_weights takes it for the real[] model only
CREATE TEMP TABLE grads AS
  SELECT (SELECT compute_gradients(model, x, label) FROM test, models WHERE name = 'real') AS g_real,
         (SELECT compute_gradients(model, pixels, label) FROM test, models WHERE name = 'bytea') AS g_bytea;
SELECT count(*) AS tensors, bool_and(a.weights = b.weights) AS same_gradients,
       (SELECT model_info(g_real)->>'input_type' FROM grads) AS gradient_input_type
FROM model_weights((SELECT g_real FROM grads)) a JOIN model_weights((SELECT g_bytea FROM grads)) b USING (layer, name);
SELECT length(update_weights(model, g_real, 0.01)) = length(model) AS stepped
FROM models, grads WHERE name = 'real';
SELECT update_weights(model, g_real, 0.01) FROM models, grads WHERE name = 'bytea';
\echo :LAST_ERROR_SQLSTATE
-- a multi-dimensional array is read row-major, as its flattened elements
SELECT predict(model, x) = predict(model, (SELECT array_agg(r ORDER BY k)
                                          FROM (SELECT k, array_agg(x[k * 28 + j + 1] ORDER BY j) AS r
                                                FROM generate_series(0, 27) k, generate_series(0, 27) j GROUP BY k) rows)::real[])
         AS same_class_2d,
       array_ndims((SELECT array_agg(r) FROM (SELECT ARRAY[1.5::real, 2] AS r UNION ALL SELECT ARRAY[3::real, 4]) s)) AS ndims
FROM test, models WHERE name = 'real' AND test.id = 0;

-- ---------------------------------------------------------------- training forms
-- continued training from a real[] model, a parallel plan, other normalisations
SELECT model_info(train_conv2d(x, label, :'small', model))->'rows_trained' AS continued
FROM train, models WHERE name = 'real';
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.run_plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END
$$;
-- (a temporary table is never scanned in parallel: the rows go to a plain one)
CREATE TABLE real_par_rows AS SELECT x, label FROM train;
SELECT pg_temp.run_plan(format('CREATE TEMP TABLE par AS SELECT train_conv2d(x, label, %L) AS m FROM real_par_rows', :'small'))
         ~ 'Partial Aggregate' AS partial_aggregate;
SELECT (SELECT m FROM par) = model AS parallel_same_bytes FROM models WHERE name = 'real';
DROP TABLE real_par_rows;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
-- zscore over the values; minmax as the minimum and the range of the training rows
SELECT n, model_info(m)->'normalize'->>'mode' AS mode,
       array(SELECT jsonb_object_keys(model_info(m)->'normalize') ORDER BY 1) AS keys,
       (model_info(m)->'normalize'->>'range')::float8 = 1 AS unit_range
FROM (SELECT n, train_conv2d(x, label, jsonb_set(:'small', '{normalize}', to_jsonb(n))) AS m
      FROM train, unnest(ARRAY['zscore', 'minmax']) n GROUP BY n) s ORDER BY n;
-- a shape that is not a square comes from the input option
SELECT model_info(train_conv2d(x[1:56], label, '{"layers": "conv(2,3) flatten dense(10)", "input": [4, 7, 2], "epochs": 1}'))->'input'
         AS input
FROM train WHERE id < 64;
-- the rows count against mlcnn.max_train_memory at four bytes a value (bytea: one)
SET mlcnn.max_train_memory = '4400kB';
SELECT train_conv2d(pixels, label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(x, label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
RESET mlcnn.max_train_memory;

-- the entry points of tuning and of training across servers take real[] rows too
SELECT model_info(tune_conv2d(x, label, :'small'::jsonb || '{"validation_fraction": 0.2, "space": {"learning_rate": [0.003, 0.01]}}'))->'tuning'->'trials' @> '[{"trial": 2}]'
         AS tuned
FROM train WHERE id < 300;
CREATE TABLE real_dist AS SELECT x, label FROM train WHERE id < 300;
SELECT model_info(m)->>'input_type' AS input_type, model_info(m)->'distributed'->>'shards' AS shards
FROM (SELECT train_distributed('real_dist', :'small'::jsonb - 'epochs' || '{"pixels_column": "x", "rounds": 2}') AS m) d;
SELECT evaluate_combine(p) = (SELECT evaluate(model, x, label) FROM test, models WHERE name = 'real') AS partial_real_evaluate
FROM (SELECT evaluate_partial(model, x, label) AS p FROM test, models WHERE name = 'real' GROUP BY test.id % 2) s;
DROP TABLE real_dist;

-- ---------------------------------------------------------------- ONNX
-- the export of a real[] model takes the floats as they are; its import is a
-- real[] model again (the file's input_type), or, asked for, a bytea model
-- that gives the same logits for bytes as the real[] model for their values
SELECT model_info(model_from_onnx(model_to_onnx(model)))->>'input_type' AS reimported,
       model_info(model_from_onnx(model_to_onnx(model), '{"input_type": "bytea"}'))->>'input_type' AS as_bytea
FROM models WHERE name = 'real';
SELECT bool_and(forward_pass(b, t.pixels) = forward_pass(r.model, (SELECT array_agg(get_byte(t.pixels, i)::real ORDER BY i)
                                                                   FROM generate_series(0, 783) i))) AS same_logits
FROM test t, models r, LATERAL (SELECT model_from_onnx(model_to_onnx(r.model), '{"input_type": "bytea"}') AS b) m
WHERE r.name = 'real' AND t.id < 20;
-- a file whose graph divides by 255 is a model of bytes: as real[] it is refused
SELECT model_from_onnx(model_to_onnx(model), '{"input_type": "real[]"}') FROM models WHERE name = 'bytea';
\echo :LAST_ERROR_SQLSTATE
SELECT model_from_onnx(model_to_onnx(model), '{"input_type": "float8[]"}') FROM models WHERE name = 'real';
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- errors
-- NaN, infinities and NULL elements, with their position
SELECT predict(model, x[1:99] || 'NaN'::real || x[101:784]) FROM test, models WHERE name = 'real' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT forward_pass(model, x[1:9] || '-Infinity'::real || x[11:784]) FROM test, models WHERE name = 'real' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT predict_proba(model, x[1:783] || NULL::real) FROM test, models WHERE name = 'real' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(CASE WHEN id = 7 THEN x[1:4] || 'Infinity'::real || x[6:784] ELSE x END, label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate(model, x[1:1] || NULL::real || x[3:784], label) FROM test, models WHERE name = 'real';
\echo :LAST_ERROR_SQLSTATE
-- the other type than the model's, either way
SELECT predict(model, pixels) FROM test, models WHERE name = 'real' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT calculate_loss(model, x, label) FROM test, models WHERE name = 'bytea' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT compute_gradients(model, x, label) FROM test, models WHERE name = 'bytea';
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(x, label, :'small', model) FROM train, models WHERE name = 'bytea';
\echo :LAST_ERROR_SQLSTATE
-- lengths: another length than the model's, rows of different lengths, no square and no input option
SELECT predict(model, x[1:100]) FROM test, models WHERE name = 'real' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(CASE WHEN id = 5 THEN x[1:100] ELSE x END, label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(x[1:50], label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT predict(model, '{}'::real[]) FROM models WHERE name = 'real';
\echo :LAST_ERROR_SQLSTATE
-- an untyped NULL or literal beside a bytea model is taken as bytea (PostgreSQL
-- assumes the type of the other arguments when they agree), as before real[]
-- existed; where the other arguments differ in type it needs a cast
SELECT predict(model, NULL) IS NULL AS bytea_null, predict(model, NULL::real[]) IS NULL AS cast_null
FROM models WHERE name = 'real';
SELECT predict(model, '\x0001') FROM models WHERE name = 'bytea';
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate(model, NULL, label) FROM test, models WHERE name = 'real';
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate(model, NULL::real[], label)->'skipped' AS skipped FROM test, models WHERE name = 'real';

-- ---------------------------------------------------------------- labels
SELECT p.oid::regprocedure, provolatile, proparallel, proisstrict
FROM pg_proc p
WHERE p.oid::regprocedure::text LIKE '%real[]%' AND p.pronamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'mlcnn')
ORDER BY p.oid::regprocedure::text;
