-- pgTAP: a training loop written in PL/pgSQL from compute_gradients and
-- update_weights lowers the loss, and one of its steps is the SGD step
-- train_conv2d takes in C for the same batch; the primitives' errors with
-- their SQLSTATEs.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(21);

SELECT has_function('compute_gradients', ARRAY['bytea', 'bytea', 'integer'], 'compute_gradients exists');
SELECT is_aggregate('compute_gradients', ARRAY['bytea', 'bytea', 'integer'], 'compute_gradients is an aggregate');
SELECT is_aggregate('evaluate', ARRAY['bytea', 'bytea', 'integer'], 'evaluate is an aggregate');
SELECT has_function('update_weights', ARRAY['bytea', 'bytea', 'real'], 'update_weights exists');

CREATE TEMP TABLE tap_train AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
CREATE TEMP TABLE tap_test AS
	SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
	                       'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');

-- a starting model: trained on other rows (ids 1000 and up) for one epoch,
-- so it is neither random nor converged
CREATE TEMP TABLE tap_init AS
	SELECT train_conv2d(pixels, label,
	         '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1,
	           "batch_size": 100, "record_times": false}') AS model
	FROM tap_train WHERE id >= 1000;

-- ----------------------------------------------- one step: SQL versus the core
-- the batch: rows 0..199, trained on by train_conv2d as ONE batch of SGD at a
-- constant 0.1 (dropout-free spec, minmax as in the initial model), and by
-- update_weights(init, compute_gradients(init, batch), 0.1)
CREATE TEMP TABLE tap_step AS
	SELECT (SELECT train_conv2d(pixels, label,
	          '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1, "batch_size": 200,
	            "optimizer": "sgd", "learning_rate": 0.1, "lr_schedule": "constant", "normalize": "minmax",
	            "record_times": false}', (SELECT model FROM tap_init))
	        FROM tap_train WHERE id < 200) AS core,
	       (SELECT update_weights((SELECT model FROM tap_init),
	                               compute_gradients((SELECT model FROM tap_init), pixels, label), 0.1)
	        FROM tap_train WHERE id < 200) AS sql,
	       (SELECT update_weights((SELECT model FROM tap_init),
	                               compute_gradients((SELECT model FROM tap_init), pixels, label), 0.1)
	        FROM tap_train WHERE id < 199) AS sql_199;
-- element by element: w_core, w_sql, w_init and the SQL step without row 199
CREATE TEMP TABLE tap_elems AS
	SELECT name, c, s, i, s199
	FROM tap_step,
	     model_weights(core) wc JOIN model_weights(sql) ws USING (name)
	     JOIN model_weights((SELECT model FROM tap_init)) wi USING (name)
	     JOIN model_weights(sql_199) w199 USING (name),
	     unnest(wc.weights, ws.weights, wi.weights, w199.weights) u(c, s, i, s199);
SELECT is((SELECT count(*)::int FROM tap_elems),
          (SELECT (model_info(model)->>'parameters')::int FROM tap_init),
	'every parameter is compared');
-- Tolerance 1e-6: the two sides add the same per-row gradients in different
-- orders (the core in one batch of 200 scaled by 1/200, compute_gradients in
-- batches of 64 summed, then divided by 200), so they differ by float32
-- rounding of the sum: a few units in the last place of weights below ~1
-- (ulp(1) = 1.2e-7). The step itself is up to ~1e-2, and leaving out a
-- single row of 200 moves it by far more than 1e-6 (checked below), so the
-- tolerance does not hide a real difference.
SELECT diag(format('one step: max |core - sql| %s, max |core - init| %s, max |sql - sql without a row| %s',
                   max(abs(c - s)), max(abs(c - i)), max(abs(s199 - s))))
FROM tap_elems;
SELECT cmp_ok((SELECT max(abs(c - s))::float8 FROM tap_elems), '<', 1e-6::float8,
	'one SQL step (compute_gradients + update_weights) equals the core''s SGD step within 1e-6');
SELECT cmp_ok((SELECT max(abs(c - i))::float8 FROM tap_elems), '>', 1e-3::float8,
	'the step is not empty: weights moved by more than 1e-3');
SELECT cmp_ok((SELECT max(abs(s199 - s))::float8 FROM tap_elems), '>', 1e-5::float8,
	'and one row more or less changes the step by far more than the tolerance');
SELECT is(model_info(sql) - 'size_bytes' - 'history' - 'options' - 'rows_trained',
          model_info((SELECT model FROM tap_init)) - 'size_bytes' - 'history' - 'options' - 'rows_trained',
	'update_weights keeps what the model says about itself')
FROM tap_step;

-- ----------------------------------------------------- a loop in PL/pgSQL
-- two passes over rows 0..999 in batches of 100, plain SGD at 0.1, from the
-- initial model; returns the model
CREATE FUNCTION pg_temp.sgd_loop(start bytea, passes int, batch int, lr real) RETURNS bytea
LANGUAGE plpgsql AS $$
DECLARE
	m bytea := start;
	g bytea;
BEGIN
	FOR pass IN 1..passes LOOP
		FOR b IN 0..(1000 / batch) - 1 LOOP
			SELECT compute_gradients(m, pixels, label) INTO g
			FROM tap_train WHERE id >= b * batch AND id < (b + 1) * batch;
			m := update_weights(m, g, lr);
		END LOOP;
	END LOOP;
	RETURN m;
END
$$;
CREATE TEMP TABLE tap_loop AS
	SELECT model AS before, pg_temp.sgd_loop(model, 2, 100, 0.1) AS after FROM tap_init;
CREATE TEMP TABLE tap_loss AS
	SELECT (SELECT avg(calculate_loss(before, pixels, label)) FROM tap_train WHERE id < 1000) AS train_before,
	       (SELECT avg(calculate_loss(after, pixels, label)) FROM tap_train WHERE id < 1000) AS train_after,
	       (SELECT (evaluate(before, pixels, label)->>'loss')::float8 FROM tap_test) AS test_before,
	       (SELECT (evaluate(after, pixels, label)->>'loss')::float8 FROM tap_test) AS test_after,
	       (SELECT (evaluate(before, pixels, label)->>'accuracy')::float8 FROM tap_test) AS acc_before,
	       (SELECT (evaluate(after, pixels, label)->>'accuracy')::float8 FROM tap_test) AS acc_after
	FROM tap_loop;
SELECT diag(format('PL/pgSQL loop: training loss %s -> %s, test loss %s -> %s, test accuracy %s -> %s',
                   round(train_before::numeric, 4), round(train_after::numeric, 4),
                   round(test_before::numeric, 4), round(test_after::numeric, 4),
                   round(acc_before::numeric, 3), round(acc_after::numeric, 3)))
FROM tap_loss;
-- 20 SGD steps of 0.1 from a model one epoch old: the training loss must
-- fall by at least a quarter (it falls by much more), the test loss too
SELECT cmp_ok(train_after, '<', 0.75 * train_before,
	'the PL/pgSQL loop lowers the training loss by more than a quarter') FROM tap_loss;
SELECT cmp_ok(test_after, '<', test_before, 'and the loss on unseen rows') FROM tap_loss;
SELECT cmp_ok(acc_after, '>', acc_before, 'and raises the test accuracy') FROM tap_loss;

-- ------------------------------------------------------------------- errors
CREATE TEMP TABLE tap_grads AS
	SELECT compute_gradients(model, pixels, label) AS g FROM tap_init, tap_train WHERE id < 100;
CREATE TEMP TABLE tap_other AS
	SELECT train_conv2d(pixels, label, '{"layers": "flatten dense(10)", "epochs": 1}') AS model
	FROM tap_train WHERE id < 100;
SELECT throws_ok(
	$$SELECT update_weights(o.model, g, 0.1) FROM tap_other o, tap_grads$$,
	'22000', 'gradients of another architecture',
	'gradients of another architecture are refused');
SELECT throws_ok(
	$$SELECT update_weights(model, model, 0.1) FROM tap_init$$,
	'22023', 'the second argument of update_weights must be gradients from compute_gradients, not a model',
	'a model where gradients are expected');
SELECT throws_ok(
	$$SELECT update_weights(g, g, 0.1) FROM tap_grads$$,
	'22023', 'the first argument of update_weights must be a model, not gradients',
	'gradients where a model is expected');
SELECT throws_ok(
	$$SELECT update_weights(model, g, 'NaN') FROM tap_init, tap_grads$$,
	'22023', 'learning_rate must be a finite number >= 0, not NaN', 'a NaN learning rate');
SELECT throws_ok(
	$$SELECT update_weights(model, g, '-Infinity') FROM tap_init, tap_grads$$,
	'22023', 'learning_rate must be a finite number >= 0, not -Infinity', 'an infinite learning rate');
SELECT throws_ok(
	$$SELECT update_weights(model, g, -1e-3) FROM tap_init, tap_grads$$,
	'22023', 'learning_rate must be a finite number >= 0, not -0.001', 'a negative learning rate');
SELECT throws_ok(
	$$SELECT compute_gradients(g, pixels, label) FROM tap_grads, tap_train$$,
	'22023', 'expected a model but got a gradient blob', 'compute_gradients wants a model');
SELECT throws_ok(
	$$SELECT evaluate(model, pixels, 12) FROM tap_init, tap_test$$,
	'22000', 'label 12 is outside the model''s classes 0..9', 'evaluate names a bad label');
SELECT throws_ok(
	$$SELECT compute_gradients(model, '\x00'::bytea, label) FROM tap_init, tap_test$$,
	'22000', 'pixels have 1 bytes but the model''s input 28x28x1 needs 784',
	'compute_gradients names both pixel lengths');

SELECT * FROM finish();
ROLLBACK;
