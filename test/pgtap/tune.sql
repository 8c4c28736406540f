-- pgTAP: tune_conv2d, model selection in one aggregate call. On a slice of
-- Fashion-MNIST (Debian's dataset-fashion-mnist; the synthetic set when it
-- is not installed): a grid, successive halving and a random search each
-- return the best model with every trial on record; the winner's options
-- retrained with train_conv2d give the same weights (a trial is exactly
-- train_conv2d); halving resumes the survivors (their epochs are the
-- rungs'); the same search gives the same model bytes; EXPLAIN ANALYZE lists
-- the trials; and every kind of bad search is refused with 22023 before any
-- training.
--
-- Run by scripts/test.sh in a database with pgtap and mlcnn.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(34);

CREATE FUNCTION pg_temp.rows(part text, n int) RETURNS TABLE (id int, label int, pixels bytea) LANGUAGE plpgsql AS $$
DECLARE
	fm text := '/usr/share/datasets/fashion-mnist/';
BEGIN
	IF pg_stat_file(fm || 'train-labels-idx1-ubyte.gz', true) IS NOT NULL THEN
		RETURN QUERY SELECT * FROM load_idx(fm || part || '-images-idx3-ubyte.gz', fm || part || '-labels-idx1-ubyte.gz') l
			WHERE l.id < n;
	ELSE
		RETURN QUERY SELECT * FROM load_idx('mlcnn_test_data/synth/' || part || '-images-idx3-ubyte.gz',
		                                    'mlcnn_test_data/synth/' || part || '-labels-idx1-ubyte.gz') l WHERE l.id < n;
	END IF;
END
$$;
CREATE TEMP TABLE tu_train AS SELECT * FROM pg_temp.rows('train', 2000);
CREATE TEMP TABLE tu_test AS SELECT * FROM pg_temp.rows('t10k', 500);

-- a small net, no wall-clock times (byte-identical models)
\set base '{"layers": "conv(8,3) relu maxpool(2) flatten dense(10)", "epochs": 3, "record_times": false, "validation_fraction": 0.2}'
CREATE TEMP TABLE tu_searches (name text PRIMARY KEY, search jsonb);
INSERT INTO tu_searches VALUES
	('grid', :'base'::jsonb || '{"space": {"learning_rate": [0.0003, 0.003], "batch_size": [32, 64]}}'),
	('halving', :'base'::jsonb || '{"strategy": "halving", "eta": 2, "min_epochs": 1, "epochs": 3,
	                                "space": {"learning_rate": [0.0003, 0.001, 0.003, 0.01]}}'),
	('random', :'base'::jsonb || '{"strategy": "random", "trials": 3,
	                               "space": {"learning_rate": [0.0003, 0.001, 0.003], "batch_size": [32, 64]}}'),
	('loss', :'base'::jsonb || '{"metric": "validation_loss", "space": {"learning_rate": [0.0003, 0.003]}}');
CREATE TEMP TABLE tu_models AS
	SELECT s.name, (SELECT tune_conv2d(pixels, label, s.search) FROM tu_train) AS model FROM tu_searches s;
CREATE TEMP TABLE tu_info AS
	SELECT name, model_info(model)->'tuning' AS t, model FROM tu_models;
CREATE TEMP TABLE tu_trials AS
	SELECT i.name, (x->>'trial')::int AS trial, x->'options' AS options, (x->>'epochs')::int AS epochs,
	       (x->>'validation_accuracy')::float8 AS acc, (x->>'validation_loss')::float8 AS loss,
	       (i.t->>'winner')::int = (x->>'trial')::int AS winner
	FROM tu_info i, jsonb_array_elements(i.t->'trials') x;

SELECT diag(format('data: %s; grid trials (learning_rate, batch_size: validation accuracy): %s',
	CASE WHEN pg_stat_file('/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz', true) IS NULL
	     THEN 'the synthetic set' ELSE 'Fashion-MNIST, 2,000 training and 500 test rows' END,
	(SELECT string_agg(format('%s, %s: %s%s', options->'learning_rate', options->'batch_size', acc,
	                          CASE WHEN winner THEN ' (best)' ELSE '' END), '; ' ORDER BY trial)
	 FROM tu_trials WHERE name = 'grid')));

-- ------------------------------------------------------------- the record
SELECT is((SELECT count(*)::int FROM tu_trials WHERE name = 'grid'), 4, 'grid: 2 x 2 = 4 trials on record');
SELECT is((SELECT count(DISTINCT options)::int FROM tu_trials WHERE name = 'grid'), 4, 'grid: every combination once');
SELECT ok((SELECT bool_and(epochs = 3 AND acc BETWEEN 0 AND 1 AND loss > 0) FROM tu_trials WHERE name = 'grid'),
	'grid: every trial trained its 3 epochs and has a validation accuracy and loss');
SELECT is((SELECT t->>'strategy' FROM tu_info WHERE name = 'grid'), 'grid', 'model_info says the strategy');
SELECT ok((SELECT acc FROM tu_trials WHERE name = 'grid' AND winner) = (SELECT max(acc) FROM tu_trials WHERE name = 'grid') AND
          (SELECT loss FROM tu_trials WHERE name = 'grid' AND winner) =
          (SELECT min(loss) FROM tu_trials WHERE name = 'grid' AND acc = (SELECT max(acc) FROM tu_trials WHERE name = 'grid')),
	'grid: the winner has the best validation accuracy (of those, the lowest loss)');
SELECT ok((SELECT loss FROM tu_trials WHERE name = 'loss' AND winner) = (SELECT min(loss) FROM tu_trials WHERE name = 'loss'),
	'metric validation_loss: the winner has the lowest validation loss');
SELECT is((SELECT array_agg(epochs ORDER BY epochs) FROM tu_trials WHERE name = 'halving'), ARRAY[1, 1, 2, 3],
	'halving (4 trials, eta 2, 1 to 3 epochs): two stop after 1 epoch, one after 2, the winner trains all 3');
SELECT is((SELECT epochs FROM tu_trials WHERE name = 'halving' AND winner), 3, 'halving: the winner is the one that went on');
SELECT is((SELECT count(DISTINCT options)::int FROM tu_trials WHERE name = 'random'), 3, 'random: 3 distinct draws of the 6 combinations');
SELECT ok((SELECT model_info(model)->'options'->'learning_rate' FROM tu_info WHERE name = 'grid') =
          (SELECT options->'learning_rate' FROM tu_trials WHERE name = 'grid' AND winner),
	'the model''s options are the winning trial''s');

-- ------------------------------------------------------------- a trial is train_conv2d
CREATE TEMP TABLE tu_retrained AS
	SELECT i.name, (SELECT train_conv2d(pixels, label, s.search - 'space' - 'strategy' - 'eta' - 'min_epochs' - 'trials' - 'metric' || w.options)
	                FROM tu_train) AS model
	FROM tu_info i JOIN tu_searches s USING (name) JOIN tu_trials w ON w.name = i.name AND w.winner;
SELECT ok(NOT EXISTS (SELECT FROM model_weights((SELECT model FROM tu_info WHERE name = n)) a
                      FULL JOIN model_weights((SELECT model FROM tu_retrained WHERE name = n)) b USING (name)
                      WHERE a.weights IS DISTINCT FROM b.weights),
	format('%s: retraining the winning options with train_conv2d gives the same weights', n))
FROM unnest(ARRAY['grid', 'halving', 'random']) n;
SELECT is((SELECT tune_conv2d(pixels, label, (SELECT search FROM tu_searches WHERE name = 'random')) FROM tu_train),
          (SELECT model FROM tu_models WHERE name = 'random'), 'the same search gives the same model bytes');
SELECT cmp_ok((SELECT (evaluate(m.model, t.pixels, t.label)->>'accuracy')::float8 FROM tu_test t, tu_models m WHERE m.name = 'grid'),
	'>=', 0.6::float8, 'the grid''s best model classifies the test slice (accuracy >= 0.6)');
-- real[] rows
SELECT is((SELECT model_info(tune_conv2d(array(SELECT get_byte(pixels, i)::real / 255::real FROM generate_series(0, 783) i), label,
                                          :'base'::jsonb || '{"space": {"learning_rate": [0.003]}}'))->>'input_type'
           FROM tu_train WHERE id < 400), 'real[]', 'the real[] form tunes a real[] model');

-- a parallel plan: the workers buffer their rows, the leader combines and searches
CREATE TABLE tu_par_rows AS SELECT * FROM tu_train;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT is((SELECT tune_conv2d(pixels, label, (SELECT search FROM tu_searches WHERE name = 'random')) FROM tu_par_rows),
          (SELECT model FROM tu_models WHERE name = 'random'), 'a parallel plan gives the model bytes of the serial one');
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- ------------------------------------------------------------- EXPLAIN ANALYZE
CREATE FUNCTION pg_temp.explained(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	result text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF) ' || q LOOP
		result := result || line || E'\n';
	END LOOP;
	RETURN result;
END
$$;
SELECT matches(pg_temp.explained(format('SELECT tune_conv2d(pixels, label, %L) FROM tu_train WHERE id < 500',
                                       :'base'::jsonb || '{"space": {"learning_rate": [0.001, 0.003]}}')),
	'tune_conv2d: calls=1.*\n\s+Trial 1.*"learning_rate": 0.001.*epochs=3 time=[0-9.]+ ms validation_accuracy=.*\n\s+Trial 2',
	'EXPLAIN ANALYZE lists the trials with their times');

-- ------------------------------------------------------------- bad searches, before any training
CREATE FUNCTION pg_temp.refused(search jsonb, want text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	PERFORM tune_conv2d(pixels, label, search) FROM tu_train;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN CASE WHEN SQLSTATE = '22023' AND SQLERRM LIKE '%' || want || '%' AND clock_timestamp() - t0 < interval '1 s'
	            THEN 'refused' ELSE SQLSTATE || ': ' || SQLERRM END;
END
$$;
SELECT is(pg_temp.refused(s::jsonb, w), 'refused', d) FROM (VALUES
	('{"space": {"learnig_rate": [0.01]}}', 'learning_rate', 'an unknown option in the space, with the one meant'),
	('{"space": {"learning_rate": []}}', 'must be a non-empty list', 'an empty list'),
	('{"space": {"learning_rate": [0.01, -1]}}', 'learning_rate', 'a value out of range'),
	('{"space": {"learning_rate": [1,2,3,4,5,6,7,8,9], "batch_size": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29]}}',
	 'more than the 256', 'a grid larger than the limit'),
	('{"strategy": "halving", "epochs": 2, "min_epochs": 2, "space": {"learning_rate": [0.01, 0.1]}}', 'more epochs than min_epochs',
	 'halving without enough epochs'),
	('{"space": {"seed": [1, 2]}}', 'may not vary "seed"', 'a space that varies the hold-out'),
	('{"strategy": "random", "space": {"learning_rate": [0.01, 0.1]}}', 'needs "trials"', 'random search without trials'),
	('{"strategy": "random", "trials": 3, "space": {"learning_rate": [0.01, 0.1]}}', 'more than the 2 combinations', 'more random trials than combinations'),
	('{"strategy": "bayes", "space": {"learning_rate": [0.01]}}', 'must be one of', 'an unknown strategy'),
	('{"metric": "f1", "space": {"learning_rate": [0.01]}}', 'must be one of', 'an unknown metric'),
	('{"validation_fraction": 0, "space": {"learning_rate": [0.01]}}', 'validation_fraction must be > 0', 'no hold-out'),
	('{"space": {"layers": ["conv(4,3) dense(10)", "conv(4,3) nonsense"]}}', 'trial 2', 'a layer spec that does not parse'),
	('{"space": [1, 2]}', '"space" must be an object', 'a space that is not an object'),
	('{"space": {"learning_rate": [0.01]}, "momentun": 0.5}', 'momentum', 'an unknown fixed option')
) v(s, w, d);
SELECT throws_ok($$SELECT tune_conv2d(pixels, label, NULL) FROM tu_train$$, '22004', NULL, 'a NULL search is refused');
SELECT is((SELECT tune_conv2d(pixels, label, '{"space": {"learning_rate": [0.01]}}') FROM tu_train WHERE false), NULL,
	'over no rows the result is NULL, like train_conv2d');

SELECT * FROM finish();
ROLLBACK;
