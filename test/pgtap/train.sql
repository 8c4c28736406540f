-- pgTAP: train_conv2d's errors with their SQLSTATEs and messages, NULL
-- rows, continued training, mlcnn.max_train_memory, and cancellation: a
-- statement_timeout stops a long training within a second or so and the
-- backend goes on working.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(29);

CREATE TEMP TABLE tap_train AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
CREATE TEMP TABLE tap_test AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');
-- a small dropout-free net
CREATE TEMP TABLE tap_opts AS SELECT
	'{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1,
	  "learning_rate": 0.01, "record_times": false}'::jsonb AS o;

SELECT has_function('train_conv2d', ARRAY['bytea', 'integer'], 'train_conv2d(pixels, label)');
SELECT has_function('train_conv2d', ARRAY['bytea', 'integer', 'jsonb'], 'train_conv2d(pixels, label, options)');
SELECT has_function('train_conv2d', ARRAY['bytea', 'integer', 'jsonb', 'bytea'],
	'train_conv2d(pixels, label, options, init_model)');
SELECT is_aggregate('train_conv2d', ARRAY['bytea', 'integer', 'jsonb'], 'train_conv2d is an aggregate');

-- ------------------------------------------------------------------ options
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"epoch": 3}') FROM tap_train$$,
	'22023',
	'unknown option "epoch" (did you mean "epochs"?); allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times, augment_hflip, augment_shift',
	'an unknown key is named, with the allowed keys');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"batch_size": "64"}') FROM tap_train$$,
	'22023', 'option "batch_size" must be an integer, not a string',
	'a value of the wrong type names the key and the type wanted');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"momentum": 1.5}') FROM tap_train$$,
	'22023', NULL, 'momentum out of range: invalid_parameter_value');
SELECT throws_like(
	$$SELECT train_conv2d(pixels, label, '{"momentum": 1.5}') FROM tap_train$$,
	'option "momentum" must be %1.5',
	'momentum out of range: the message names the key and the value');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"seed": -1}') FROM tap_train$$,
	'22023', NULL, 'a negative seed: invalid_parameter_value');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"threads": 1000}') FROM tap_train$$,
	'22023', NULL, 'too many threads: invalid_parameter_value');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10"}') FROM tap_train$$,
	'42601', NULL, 'a layer spec that does not parse: syntax_error');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, format('{"epochs": %s}', 1 + id % 2)::jsonb) FROM tap_train$$,
	'22023', 'train_conv2d options must be the same for every row',
	'options that change from row to row are refused');

-- ------------------------------------------------------------------ bad rows
SELECT throws_ok(
	$$SELECT train_conv2d(CASE WHEN id = 10 THEN '\x0001'::bytea ELSE pixels END, label,
	                      '{"epochs": 1}' ORDER BY id) FROM tap_train$$,
	'22000', 'pixels have 2 bytes but the input shape needs 784',
	'a pixel length mismatch names both lengths');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label + 1, '{"epochs": 1}') FROM tap_train$$,
	'22000', 'label 10 is outside 0..9',
	'a label outside [0, classes) is named with the range');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"classes": 3}') FROM tap_train$$,
	'22000', NULL, 'labels beyond the "classes" option are refused');

-- ----------------------------------------------------------------- NULL rows
CREATE TEMP TABLE tap_nulls AS
	SELECT (SELECT train_conv2d(CASE WHEN id % 50 = 0 THEN NULL ELSE pixels END,
	                            CASE WHEN id % 50 = 1 THEN NULL ELSE label END, o) FROM tap_train) AS m
	FROM tap_opts;
SELECT is(model_info(m)->'rows_skipped', '80'::jsonb, 'NULL pixels and NULL labels are counted as skipped')
FROM tap_nulls;
SELECT is(model_info(m)->'rows_trained', '1920'::jsonb, 'and are not trained on')
FROM tap_nulls;

-- --------------------------------------------------------- continued training
CREATE TEMP TABLE tap_models AS
	SELECT (SELECT train_conv2d(pixels, label, o) FROM tap_train WHERE id < 1000) AS first
	FROM tap_opts;
ALTER TABLE tap_models ADD COLUMN second bytea;
UPDATE tap_models SET second = (SELECT train_conv2d(pixels, label, o, first) FROM tap_train, tap_opts
                                WHERE id >= 1000);
SELECT cmp_ok((SELECT (evaluate(second, pixels, label)->>'loss')::float8 FROM tap_test),
	'<', (SELECT (evaluate(first, pixels, label)->>'loss')::float8 FROM tap_test),
	'continuing with more rows lowers the test loss')
FROM tap_models;
SELECT is(model_info(second)->'layers', model_info(first)->'layers',
	'the continued model has the architecture of init_model')
FROM tap_models;
SELECT throws_like(
	$$SELECT train_conv2d(pixels, label, '{"layers": "conv(8,3) relu maxpool(2) flatten dense(10)"}',
	                      (SELECT first FROM tap_models)) FROM tap_train$$,
	'%initial model''s architecture (conv(4,3) relu maxpool(2) flatten dense(10) on 28x28x1, 10 classes) differs from the options'' (conv(8,3) relu maxpool(2) flatten dense(10) on 28x28x1, 10 classes)%',
	'another architecture is refused, naming both');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"layers": "conv(8,3) relu maxpool(2) flatten dense(10)"}',
	                      (SELECT first FROM tap_models)) FROM tap_train$$,
	'22000', NULL, 'another architecture: data_exception');
SELECT throws_ok(
	$$SELECT train_conv2d(pixels, label, '{"epochs": 1}', '\x00'::bytea) FROM tap_train$$,
	'XX001', NULL, 'an init_model that is no model: data_corrupted');

-- --------------------------------------------------------- max_train_memory
SET LOCAL mlcnn.max_train_memory = '100kB';
CREATE FUNCTION pg_temp.train_error(OUT state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM train_conv2d(pixels, label, '{"epochs": 1}') FROM tap_train;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;
CREATE TEMP TABLE tap_mem AS SELECT * FROM pg_temp.train_error();
SELECT is(state, '54000', 'too little mlcnn.max_train_memory: program_limit_exceeded') FROM tap_mem;
SELECT matches(message, '^training needs \d+ kB, more than mlcnn\.max_train_memory \(100 kB\)$',
	'the message says what training needs and the limit') FROM tap_mem;
SELECT is(hint, 'Raise mlcnn.max_train_memory, or train on fewer rows.', 'the hint says what to do')
FROM tap_mem;
RESET mlcnn.max_train_memory;
SELECT lives_ok($$SELECT train_conv2d(pixels, label, '{"layers": "flatten dense(10)", "epochs": 1}') FROM tap_train$$,
	'with the default limit the same rows train');

-- ------------------------------------------------------------- cancellation
-- the default net for 1,000 epochs would take about half an hour here; a
-- 1 s statement_timeout must stop it within 3 s (elapsed time measured
-- with clock_timestamp around the training)
CREATE FUNCTION pg_temp.timed_training(OUT state text, OUT seconds float8)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	state := 'finished';
	BEGIN
		PERFORM train_conv2d(pixels, label, '{"epochs": 1000}') FROM tap_train;
	EXCEPTION WHEN query_canceled THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
	END;
	seconds := extract(epoch FROM clock_timestamp() - t0);
END
$$;
SET LOCAL statement_timeout = '1s';
CREATE TEMP TABLE tap_cancel AS SELECT * FROM pg_temp.timed_training();
SET LOCAL statement_timeout = 0;
SELECT is(state, '57014', 'statement_timeout cancels training: query_canceled') FROM tap_cancel;
SELECT cmp_ok(seconds, '<', 3.0::float8, 'and it stops within 3 s') FROM tap_cancel;
SELECT diag('training was cancelled after ' || round(seconds::numeric, 2) || ' s') FROM tap_cancel;
SELECT ok((SELECT (evaluate(train_conv2d, pixels, label)->>'accuracy')::float8 > 0.5
           FROM (SELECT train_conv2d(pixels, label, o) FROM tap_train, tap_opts GROUP BY o) m, tap_test),
	'after the cancellation the backend trains and evaluates as before');

SELECT * FROM finish();
ROLLBACK;
