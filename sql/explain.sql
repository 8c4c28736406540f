-- EXPLAIN (ANALYZE) of queries that call mlcnn: the mlcnn section after the
-- plan. TIMING OFF hides mlcnn's times as it hides the nodes', SUMMARY OFF
-- the backend's memory growth; peak memory figures are masked (NkB) since
-- they depend on the allocator (N). test/pgtap/explain.sql checks the figures.
-- Paths are relative to the data directory (mlcnn_test_data -> build/testdata).
\set SHOW_CONTEXT never
SET max_parallel_workers_per_gather = 0;

-- the EXPLAIN hook is installed when the library loads: load it first
LOAD 'mlcnn';

CREATE TABLE explain_rows AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz')
  WHERE id < 300;
ANALYZE explain_rows;

-- EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, extra) of q, memory masked
CREATE FUNCTION explain_masked(q text, extra text DEFAULT '')
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  l text;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF' || extra || ') ' || q LOOP
    RETURN NEXT regexp_replace(regexp_replace(l, '\d+kB', 'NkB', 'g'),
                               '(Peak Memory: )\d+$', '\1N');
  END LOOP;
END
$$;

-- training: one group of 300 rows, 1 epoch of ceil(300 / 32) = 10 batches
SELECT explain_masked($$SELECT length(train_conv2d(pixels, label, '{"epochs":1,"batch_size":32}')) > 0 FROM explain_rows$$);

CREATE TABLE explain_model AS
  SELECT train_conv2d(pixels, label, '{"epochs":1}') AS m FROM explain_rows;
ANALYZE explain_model;

-- inference: one call per row
SELECT explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model');
-- under a LIMIT, only the rows computed
SELECT explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model LIMIT 5');
-- several functions in one query, in a fixed order
SELECT explain_masked($$SELECT predict_proba(m, pixels), forward_pass(m, pixels),
                               calculate_loss(m, pixels, label)
                        FROM explain_rows, explain_model WHERE id < 10$$);
SELECT explain_masked('SELECT evaluate(m, pixels, label) IS NOT NULL FROM explain_rows, explain_model');

-- nothing is added without ANALYZE, nor to a query that calls no mlcnn function
EXPLAIN (COSTS OFF) SELECT predict(m, pixels) FROM explain_rows, explain_model;
SELECT explain_masked('SELECT count(*) FROM explain_rows');

-- the structured formats: the names of the properties
CREATE FUNCTION explain_json(q text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  j json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO j;
  RETURN (j::jsonb)->0;
END
$$;
SELECT jsonb_object_keys(explain_json($$SELECT train_conv2d(pixels, label, '{"epochs":1}') FROM explain_rows WHERE id < 100$$)->'mlcnn');
SELECT jsonb_object_keys(explain_json($$SELECT train_conv2d(pixels, label, '{"epochs":1}') FROM explain_rows WHERE id < 100$$)->'mlcnn'->'Functions'->0);
SELECT jsonb_object_keys(explain_json('SELECT predict(m, pixels) FROM explain_rows, explain_model')->'mlcnn'->'Functions'->0);
SELECT explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model WHERE id < 3', ', FORMAT YAML');

-- the query's results are the same with and without EXPLAIN ANALYZE
CREATE TABLE explain_plain AS SELECT id, predict(m, pixels) AS p FROM explain_rows, explain_model;
SELECT explain_masked('CREATE TABLE explain_ctas AS SELECT id, predict(m, pixels) AS p FROM explain_rows, explain_model');
SELECT count(*) AS differences FROM (
  (SELECT * FROM explain_plain EXCEPT ALL SELECT * FROM explain_ctas)
  UNION ALL
  (SELECT * FROM explain_ctas EXCEPT ALL SELECT * FROM explain_plain)) d;

-- with auto_explain and pg_stat_statements loaded before mlcnn (their
-- executor hooks then run inside mlcnn's): a new session
\c
SET max_parallel_workers_per_gather = 0;
LOAD 'auto_explain';
LOAD 'pg_stat_statements';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_level = debug5;
LOAD 'mlcnn';
SELECT explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model');
CREATE TABLE explain_auto AS SELECT id, predict(m, pixels) AS p FROM explain_rows, explain_model;
SELECT count(*) AS differences FROM (
  (SELECT * FROM explain_plain EXCEPT ALL SELECT * FROM explain_auto)
  UNION ALL
  (SELECT * FROM explain_auto EXCEPT ALL SELECT * FROM explain_plain)) d;

-- through session_preload_libraries, without LOAD (superuser setting)
\c -reuse-previous=on "options=-csession_preload_libraries=mlcnn"
SET max_parallel_workers_per_gather = 0;
SHOW session_preload_libraries;
SELECT explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model WHERE id < 4');

-- loaded on first use in a new session: the first EXPLAIN ANALYZE loads the
-- library in mid-query, after the EXPLAIN hook would have been needed, so
-- only the later ones show the section (documented); the figures are counted
\c -reuse-previous=on "options="
SHOW session_preload_libraries;
SET max_parallel_workers_per_gather = 0;
SELECT count(*) > 0 AS explained FROM explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model WHERE id < 4');
SELECT explain_masked('SELECT predict(m, pixels) FROM explain_rows, explain_model WHERE id < 4');
SELECT function, calls, rows FROM mlcnn_stats;

DROP TABLE explain_rows, explain_model, explain_plain, explain_ctas, explain_auto;
DROP FUNCTION explain_masked(text, text);
DROP FUNCTION explain_json(text);
