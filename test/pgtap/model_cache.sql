-- pgTAP: the model caches. predict() keeps the decoded model per call site
-- and, for models stored out of line, across queries of the session (the
-- last four, found by TOAST pointer and stored checksum). These tests check
-- that a cached model is never the wrong one: after an UPDATE, with more
-- models than the session keeps, and against the same model passed in line.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(9);

CREATE TEMP TABLE mc_rows AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz')
	WHERE id < 400;

-- six models of ~54 kB (out of line), each trained with another seed
CREATE TEMP TABLE mc_models (seed int PRIMARY KEY, model bytea NOT NULL);
ALTER TABLE mc_models ALTER COLUMN model SET STORAGE EXTERNAL;	-- out of line, uncompressed
INSERT INTO mc_models
	SELECT s, (SELECT train_conv2d(pixels, label,
	              format('{"layers": "conv(8,3) relu maxpool(2) dense(10)", "epochs": 1, "seed": %s, "record_times": false}', s)::jsonb)
	           FROM mc_rows)
	FROM generate_series(1, 6) s;
SELECT cmp_ok((SELECT min(pg_column_size(model)) FROM mc_models), '>', 8000,
	'the models are large enough to be stored out of line');

-- the predictions of each model, computed with the model passed in line
-- (a copy in a VALUES list: no TOAST pointer, so no session cache)
CREATE TEMP TABLE mc_expected AS
	SELECT m.seed, md5(string_agg(predict(v.model, r.pixels)::text, ',' ORDER BY r.id)) AS p
	FROM mc_models m, LATERAL (VALUES (m.model || ''::bytea)) v(model), mc_rows r
	GROUP BY m.seed;
SELECT is((SELECT count(DISTINCT p)::int FROM mc_expected), 6, 'six models, six different prediction sets');

-- one query per model, twice round: more models than the session keeps
CREATE FUNCTION pg_temp.preds(s int) RETURNS text LANGUAGE sql AS $$
	SELECT md5(string_agg(predict(m.model, r.pixels)::text, ',' ORDER BY r.id))
	FROM mc_models m, mc_rows r WHERE m.seed = s $$;
SELECT is((SELECT count(*)::int FROM mc_expected e WHERE pg_temp.preds(e.seed) = e.p), 6,
	'first round: each stored model predicts as its in-line copy');
SELECT is((SELECT count(*)::int FROM mc_expected e WHERE pg_temp.preds(e.seed) = e.p), 6,
	'second round (models evicted and found again): the same');
SELECT is((SELECT count(*)::int FROM generate_series(1, 3) g, mc_expected e
           WHERE e.seed = 2 AND pg_temp.preds(2) = e.p), 3,
	'the same model three queries in a row: the same predictions');

-- an UPDATE gives the row a new value, which must not be served from the cache
SELECT is(pg_temp.preds(1), (SELECT p FROM mc_expected WHERE seed = 1), 'model 1 before the update');
UPDATE mc_models SET model = (SELECT model FROM mc_models WHERE seed = 3) WHERE seed = 1;
SELECT is(pg_temp.preds(1), (SELECT p FROM mc_expected WHERE seed = 3),
	'after UPDATE, row 1 predicts with its new model');
UPDATE mc_models SET model = (SELECT model FROM mc_models WHERE seed = 5) WHERE seed = 1;
SELECT is(pg_temp.preds(1), (SELECT p FROM mc_expected WHERE seed = 5), 'and again after a second UPDATE');

-- evaluate (batches) and predict share the cache: they must agree
SELECT is((SELECT (evaluate(m.model, r.pixels, r.label)->>'correct')::int FROM mc_models m, mc_rows r WHERE m.seed = 4),
          (SELECT count(*)::int FROM mc_models m, mc_rows r WHERE m.seed = 4 AND predict(m.model, r.pixels) = r.label),
	'evaluate and predict agree on a cached model');

SELECT * FROM finish();
ROLLBACK;
