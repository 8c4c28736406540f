-- Partial results of compute_gradients, evaluate and average_models: their state is a bytea
-- with a combine function, so a plan can run the passes where the rows are
-- and ship only partials. Checked the way Citus splits an aggregate (a
-- worker aggregate without its final function, whose state crosses the
-- network as its text output, then the combine and final functions on the
-- coordinator), and with PostgreSQL's own parallel plan: evaluate's counts
-- equal the local aggregate's exactly, the gradients within float rounding.
-- After each error, the SQLSTATE.
\set SHOW_CONTEXT never
\set small '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1, "learning_rate": 0.01, "record_times": false}'
CREATE TABLE partial_rows AS
  SELECT id, label, pixels, id % 3 AS shard
  FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz', 'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');
CREATE TABLE partial_model AS
  SELECT train_conv2d(pixels, label, :'small') AS model
  FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz', 'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
-- what Citus makes of them: the worker part (no final function: the state is the result) ...
CREATE AGGREGATE pg_temp.evaluate_partial(bytea, bytea, integer) (SFUNC = mlcnn_evaluate_transfn, STYPE = bytea);
CREATE AGGREGATE pg_temp.gradients_partial(bytea, bytea, integer) (SFUNC = mlcnn_gradients_transfn, STYPE = bytea);
-- ... and the coordinator part, over the partials
CREATE AGGREGATE pg_temp.evaluate_combine(bytea) (
  SFUNC = mlcnn_evaluate_combinefn, STYPE = bytea, FINALFUNC = mlcnn_evaluate_finalfn);
CREATE AGGREGATE pg_temp.gradients_combine(bytea) (
  SFUNC = mlcnn_gradients_combinefn, STYPE = bytea, FINALFUNC = mlcnn_gradients_finalfn);
-- three shards' partials, each through its text form (bytea's hex), as they cross the network
CREATE TEMP TABLE partials AS
  SELECT shard, pg_temp.evaluate_partial(m.model, r.pixels, r.label)::text AS ev,
         pg_temp.gradients_partial(m.model, r.pixels, r.label)::text AS gr, count(*) AS rows
  FROM partial_rows r, partial_model m GROUP BY shard;
SELECT shard, rows, length(ev::bytea) < 2000 AS evaluate_partial_is_small,
       length(gr::bytea) < 2 * length((SELECT model FROM partial_model)) AS gradient_partial_is_model_sized
FROM partials ORDER BY shard;
-- evaluate: the same counts, accuracy, loss and matrix as over all rows in one place
SELECT (SELECT pg_temp.evaluate_combine(ev::bytea) FROM partials) =
       (SELECT evaluate(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m) AS same_evaluation,
       (SELECT pg_temp.evaluate_combine(ev::bytea) FROM partials)->'rows' AS rows;
-- compute_gradients: the same mean gradient within float rounding, the same rows
CREATE TEMP TABLE grads AS
  SELECT (SELECT pg_temp.gradients_combine(gr::bytea) FROM partials) AS split,
         (SELECT compute_gradients(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m) AS local;
SELECT model_info(split)->'gradient_rows' = model_info(local)->'gradient_rows' AS same_rows,
       (SELECT max(abs(a - b)) FROM model_weights(split) x JOIN model_weights(local) y USING (layer, name),
               unnest(x.weights, y.weights) u(a, b)) < 1e-6 AS within_rounding,
       (SELECT max(abs(b)) FROM model_weights(local), unnest(weights) b) > 1e-4 AS gradients_not_zero
FROM grads;
-- NULLs are skipped and counted across partials
SELECT pg_temp.evaluate_combine(p)->'skipped' AS skipped
FROM (SELECT pg_temp.evaluate_partial(m.model, CASE WHEN r.id % 5 = 0 THEN NULL ELSE r.pixels END, r.label) AS p
      FROM partial_rows r, partial_model m GROUP BY shard) s;
-- a shard without rows contributes nothing
SELECT pg_temp.evaluate_combine(p) = (SELECT evaluate(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m
                                      WHERE shard = 0) AS empty_shard_adds_nothing
FROM (SELECT (SELECT pg_temp.evaluate_partial(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m WHERE shard = 0) AS p
      UNION ALL
      SELECT (SELECT pg_temp.evaluate_partial(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m WHERE false)) s;

-- PostgreSQL's parallel plan: workers run the passes, the leader combines
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
CREATE FUNCTION pg_temp.plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END
$$;
-- (the model as an InitPlan parameter, so that the workers get it without a join)
SELECT pg_temp.plan('SELECT evaluate((SELECT model FROM partial_model), pixels, label) FROM partial_rows')
         ~ 'Finalize Aggregate.*Gather.*Partial Aggregate' AS parallel_plan;
CREATE TEMP TABLE par AS
  SELECT (SELECT evaluate((SELECT model FROM partial_model), pixels, label) FROM partial_rows) AS e,
         (SELECT compute_gradients((SELECT model FROM partial_model), pixels, label) FROM partial_rows) AS g;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
SELECT p.e = (SELECT evaluate(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m) AS parallel_same_evaluation,
       (SELECT max(abs(a - b)) FROM model_weights(p.g) x JOIN model_weights(g.local) y USING (layer, name),
               unnest(x.weights, y.weights) u(a, b)) < 1e-6 AS parallel_gradients_within_rounding
FROM par p, grads g;

-- errors: partials of another model, of the other aggregate, corrupt ones
CREATE TEMP TABLE other_model AS
  SELECT train_conv2d(pixels, label, jsonb_set(:'small', '{seed}', '7')) AS model FROM partial_rows WHERE id < 200;
SELECT pg_temp.evaluate_combine(p)
FROM (SELECT pg_temp.evaluate_partial(m.model, r.pixels, r.label) AS p FROM partial_rows r, partial_model m WHERE r.id < 10
      UNION ALL
      SELECT pg_temp.evaluate_partial(m.model, r.pixels, r.label) FROM partial_rows r, other_model m WHERE r.id < 10) s;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.evaluate_combine(gr::bytea) FROM partials;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.evaluate_combine(overlay(ev::bytea PLACING '\xff'::bytea FROM 40)) FROM partials;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.evaluate_combine(substring(ev::bytea FROM 1 FOR 100)) FROM partials;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.gradients_combine('\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
-- the named halves: evaluate_partial / evaluate_combine and compute_gradients_partial /
-- compute_gradients_combine are the same split as SQL aggregates of their own
SELECT (SELECT evaluate_combine(p) FROM (SELECT evaluate_partial(m.model, r.pixels, r.label) AS p
                                         FROM partial_rows r, partial_model m GROUP BY shard) s) =
       (SELECT evaluate(m.model, r.pixels, r.label) FROM partial_rows r, partial_model m) AS named_evaluate,
       (SELECT model_info(compute_gradients_combine(p))->'gradient_rows'
        FROM (SELECT compute_gradients_partial(m.model, r.pixels, r.label) AS p
              FROM partial_rows r, partial_model m GROUP BY shard) s) AS named_gradient_rows;
SELECT evaluate_combine('\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE
SELECT compute_gradients_combine(p) FROM (SELECT evaluate_partial(m.model, r.pixels, r.label) AS p
                                          FROM partial_rows r, partial_model m) s;
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate_combine(p) IS NULL AS no_partials FROM (SELECT NULL::bytea AS p) s;

-- ---------------------------------------------------------------- average_models
-- two models trained on from the one model, on two halves of the rows; their
-- average weighted by rows, against the mean computed here from model_weights
CREATE TEMP TABLE halves AS
  SELECT h, count(*) AS rows, train_conv2d(r.pixels, r.label, :'small', m.model) AS model
  FROM (SELECT *, id % 2 AS h FROM partial_rows) r, partial_model m GROUP BY h;
CREATE TEMP TABLE averaged AS
  SELECT average_models(model, rows::float8 ORDER BY h) AS model FROM halves;
SELECT (model_info(model)->>'rows_trained')::int AS rows_trained, model_info(model)->'layers' = model_info((SELECT model FROM partial_model))->'layers' AS same_layers
FROM averaged;
SELECT bool_and(abs(a.w - (h0.w * 250 + h1.w * 250) / 500) <= 1e-6) AS weighted_mean, count(*) > 1000 AS all_weights
FROM (SELECT name, k, w FROM model_weights((SELECT model FROM averaged)), unnest(weights) WITH ORDINALITY u(w, k)) a
JOIN (SELECT name, k, w FROM model_weights((SELECT model FROM halves WHERE h = 0)), unnest(weights) WITH ORDINALITY u(w, k)) h0 USING (name, k)
JOIN (SELECT name, k, w FROM model_weights((SELECT model FROM halves WHERE h = 1)), unnest(weights) WITH ORDINALITY u(w, k)) h1 USING (name, k);
-- unequal weights, and the average of one model is that model's weights
SELECT bool_and(abs(a.w - (h0.w * 1 + h1.w * 3) / 4) <= 1e-6) AS weighted_1_to_3
FROM (SELECT name, k, w FROM model_weights((SELECT average_models(model, CASE h WHEN 0 THEN 1 ELSE 3 END ORDER BY h) FROM halves)),
      unnest(weights) WITH ORDINALITY u(w, k)) a
JOIN (SELECT name, k, w FROM model_weights((SELECT model FROM halves WHERE h = 0)), unnest(weights) WITH ORDINALITY u(w, k)) h0 USING (name, k)
JOIN (SELECT name, k, w FROM model_weights((SELECT model FROM halves WHERE h = 1)), unnest(weights) WITH ORDINALITY u(w, k)) h1 USING (name, k);
SELECT NOT EXISTS (SELECT FROM model_weights((SELECT average_models(model, 7) FROM partial_model)) a
                   FULL JOIN model_weights((SELECT model FROM partial_model)) b USING (name)
                   WHERE a.weights IS DISTINCT FROM b.weights) AS one_model_is_itself;
-- split as Citus splits it: partial sums per half, through their text form, then combined
CREATE AGGREGATE pg_temp.average_partial(bytea, float8) (SFUNC = mlcnn_average_transfn, STYPE = bytea);
CREATE AGGREGATE pg_temp.average_combine(bytea) (SFUNC = mlcnn_average_combinefn, STYPE = bytea, FINALFUNC = mlcnn_average_finalfn);
SELECT (SELECT pg_temp.average_combine(p::bytea ORDER BY h)
        FROM (SELECT h, pg_temp.average_partial(model, rows::float8)::text AS p FROM halves GROUP BY h) x)
       = (SELECT model FROM averaged) AS split_same_bytes;
-- NULLs skipped; no models: NULL
SELECT average_models(model, w) IS NULL AS no_models FROM (SELECT NULL::bytea AS model, 1::float8 AS w) x;
SELECT (model_info(average_models(model, CASE WHEN h = 0 THEN NULL ELSE rows::float8 END))->>'rows_trained')::int AS rows_trained
FROM halves;
-- errors: another architecture, a gradient blob, a bad weight, a corrupt partial
SELECT average_models(model, 1) FROM (SELECT model FROM partial_model UNION ALL
  SELECT train_conv2d(pixels, label, '{"layers": "dense(10)", "epochs": 1}') FROM partial_rows WHERE id < 100) x;
\echo :LAST_ERROR_SQLSTATE
SELECT average_models(g, 1) FROM (SELECT compute_gradients(m.model, r.pixels, r.label) AS g FROM partial_rows r, partial_model m) x;
\echo :LAST_ERROR_SQLSTATE
SELECT average_models(model, 0) FROM partial_model;
\echo :LAST_ERROR_SQLSTATE
SELECT average_models(model, 'NaN') FROM partial_model;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.average_combine('\x4d4c434e4e415647'::bytea);
\echo :LAST_ERROR_SQLSTATE
DROP TABLE partial_rows, partial_model;
