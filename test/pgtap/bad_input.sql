-- pgTAP: the bad-input matrix. Every case names the SQLSTATE and the message
-- it must raise, and each one is followed by a real prediction that proves
-- the backend survived it and still answers as before.
--
-- Cases live in the temporary table bi_case (what, sql, sqlstate, message or
-- LIKE pattern); most are written out below, the model-format ones are
-- generated from a small trained model: a byte flipped at 40-odd positions
-- in every section and field of format 2 (src/nn/model.c's header
-- comment), the blob cut at every section and field boundary (raw, and
-- "resealed": length field and CRC-32 rewritten so the reader gets past its
-- checksum to the field itself), and single fields and sections forged to
-- bad values, also resealed.
--
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn;
-- everything is created inside the transaction and rolled back.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;

-- ------------------------------------------------------------ fixtures
-- 40 synthetic 8x8 rows: pixel j of row i is (7i + 3j) mod 256, label i mod 10
CREATE TEMP TABLE bi_rows AS
SELECT i, i % 10 AS label,
	(SELECT decode(string_agg(lpad(to_hex((7 * i + 3 * j) % 256), 2, '0'), '' ORDER BY j), 'hex')
	   FROM generate_series(0, 63) j) AS px
FROM generate_series(0, 39) i;

CREATE TEMP TABLE bi_model (name text PRIMARY KEY, blob bytea);
INSERT INTO bi_model
SELECT 'good', train_conv2d(px, label,
	'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8, "record_times": false}')
FROM bi_rows;
INSERT INTO bi_model
SELECT 'other', train_conv2d(px, label,
	'{"layers": "conv(2,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8, "record_times": false}')
FROM bi_rows;
INSERT INTO bi_model
SELECT 'grad', compute_gradients(m.blob, r.px, r.label) FROM bi_model m, bi_rows r WHERE m.name = 'good';
INSERT INTO bi_model
SELECT 'grad_other', compute_gradients(m.blob, r.px, r.label) FROM bi_model m, bi_rows r WHERE m.name = 'other';

-- what the good model predicts for row 3, before any bad input
CREATE TEMP TABLE bi_expect AS
SELECT predict(m.blob, r.px) AS p FROM bi_model m, bi_rows r WHERE m.name = 'good' AND r.i = 3;

-- ------------------------------------------------------------ helpers
-- little-endian fields of a blob (u64 as numeric: it may exceed bigint)
CREATE FUNCTION pg_temp.u32(b bytea, o int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
	SELECT get_byte(b, o)::bigint | (get_byte(b, o + 1)::bigint << 8) |
	       (get_byte(b, o + 2)::bigint << 16) | (get_byte(b, o + 3)::bigint << 24) $$;
CREATE FUNCTION pg_temp.u64(b bytea, o int) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_temp.u32(b, o)::numeric + pg_temp.u32(b, o + 4)::numeric * 4294967296 $$;
CREATE FUNCTION pg_temp.put_u32(b bytea, o int, v bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT set_byte(set_byte(set_byte(set_byte(b, o, (v & 255)::int), o + 1, ((v >> 8) & 255)::int),
	                o + 2, ((v >> 16) & 255)::int), o + 3, ((v >> 24) & 255)::int) $$;
CREATE FUNCTION pg_temp.put_u64(b bytea, o int, v numeric) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_temp.put_u32(pg_temp.put_u32(b, o, (v % 4294967296)::bigint), o + 4,
	                       div(v, 4294967296)::bigint) $$;
CREATE FUNCTION pg_temp.flip(b bytea, o int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT set_byte(b, o, get_byte(b, o) # 255) $$;

-- CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as the format's trailer
CREATE FUNCTION pg_temp.crc32(b bytea) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
	tbl bigint[];
	c bigint;
	crc bigint := 4294967295;
BEGIN
	FOR n IN 0..255 LOOP
		c := n;
		FOR k IN 1..8 LOOP
			IF c & 1 = 1 THEN
				c := 3988292384 # (c >> 1);
			ELSE
				c := c >> 1;
			END IF;
		END LOOP;
		tbl[n] := c;
	END LOOP;
	FOR i IN 0..length(b) - 1 LOOP
		crc := tbl[(crc # get_byte(b, i)) & 255] # (crc >> 8);
	END LOOP;
	RETURN crc # 4294967295;
END
$$;

-- rewrite the length field (bytes 16..23) and the CRC-32 trailer of a blob
CREATE FUNCTION pg_temp.reseal(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_temp.put_u32(x, length(x) - 4, pg_temp.crc32(substring(x FROM 1 FOR length(x) - 4)))
	FROM (SELECT pg_temp.put_u64(b, 16, length(b)) AS x) s $$;

-- the good model with field bytes replaced, resealed
CREATE FUNCTION pg_temp.forge32(o int, v bigint) RETURNS bytea LANGUAGE sql AS $$
	SELECT pg_temp.reseal(pg_temp.put_u32(blob, o, v)) FROM bi_model WHERE name = 'good' $$;
CREATE FUNCTION pg_temp.forge64(o int, v numeric) RETURNS bytea LANGUAGE sql AS $$
	SELECT pg_temp.reseal(pg_temp.put_u64(blob, o, v)) FROM bi_model WHERE name = 'good' $$;

-- the sanity probe run after every case
CREATE FUNCTION pg_temp.alive(what text) RETURNS text LANGUAGE sql AS $$
	SELECT is((SELECT predict(m.blob, r.px) FROM bi_model m, bi_rows r WHERE m.name = 'good' AND r.i = 3),
	          (SELECT p FROM bi_expect),
	          'backend still predicts after: ' || what) $$;

-- one assertion: sql raises this SQLSTATE with a message LIKE the pattern
CREATE FUNCTION pg_temp.throws_state_like(q text, state text, pattern text, what text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	s text;
	m text;
BEGIN
	EXECUTE q;
	RETURN ok(false, what) || E'\n' || diag('    no error was raised');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
	IF s = state AND m LIKE pattern THEN
		RETURN ok(true, what);
	END IF;
	RETURN ok(false, what) || E'\n' || diag(format(E'    caught: %s: %s\n    wanted: %s: %s', s, m, state, pattern));
END
$$;

-- the matrix
CREATE TEMP TABLE bi_case (
	id serial PRIMARY KEY,
	what text NOT NULL,
	q text NOT NULL,
	state text NOT NULL,
	msg text NOT NULL,
	is_like boolean NOT NULL DEFAULT false
);
-- each case of the matrix with its probe
CREATE FUNCTION pg_temp.run_cases() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	c record;
BEGIN
	FOR c IN SELECT * FROM bi_case ORDER BY id LOOP
		IF c.is_like THEN
			RETURN NEXT pg_temp.throws_state_like(c.q, c.state, c.msg, c.what);
		ELSE
			RETURN NEXT throws_ok(c.q, c.state, c.msg, c.what);
		END IF;
		RETURN NEXT pg_temp.alive(c.what);
	END LOOP;
END
$$;

-- a query over the good model (m) and row 3 (r); :M and :T are replaced
CREATE FUNCTION pg_temp.q(body text) RETURNS text LANGUAGE sql AS $$
	SELECT replace(replace(body, ':M', '(SELECT blob FROM bi_model WHERE name = ''good'')'),
	               ':P', '(SELECT px FROM bi_rows WHERE i = 3)') $$;
-- a training query with the small spec plus extra JSON members
CREATE FUNCTION pg_temp.train(extra text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT train_conv2d(px, label, %L::jsonb) FROM bi_rows',
	              '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8'
	              || CASE WHEN extra = '' THEN '' ELSE ', ' || extra END || '}') $$;
-- a training query with exactly these options
CREATE FUNCTION pg_temp.train_raw(opts text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT train_conv2d(px, label, %L::jsonb) FROM bi_rows', opts) $$;

-- ------------------------------------------------------------ pixels, labels, NULLs
INSERT INTO bi_case (what, q, state, msg) VALUES
('predict: pixels one byte short', pg_temp.q('SELECT predict(:M, substring(:P FROM 2))'),
	'22000', 'pixels have 63 bytes but the model''s input 8x8x1 needs 64'),
('predict: pixels one byte long', pg_temp.q('SELECT predict(:M, :P || ''\x00''::bytea)'),
	'22000', 'pixels have 65 bytes but the model''s input 8x8x1 needs 64'),
('predict: empty pixels', pg_temp.q('SELECT predict(:M, ''''::bytea)'),
	'22000', 'pixels have 0 bytes but the model''s input 8x8x1 needs 64'),
('predict: 28x28 pixels for an 8x8 model', pg_temp.q('SELECT predict(:M, decode(repeat(''7f'', 784), ''hex''))'),
	'22000', 'pixels have 784 bytes but the model''s input 8x8x1 needs 64'),
('predict: 6x6 pixels for an 8x8 model', pg_temp.q('SELECT predict(:M, decode(repeat(''7f'', 36), ''hex''))'),
	'22000', 'pixels have 36 bytes but the model''s input 8x8x1 needs 64'),
('predict: 8x8x3 pixels for an 8x8x1 model', pg_temp.q('SELECT predict(:M, :P || :P || :P)'),
	'22000', 'pixels have 192 bytes but the model''s input 8x8x1 needs 64'),
('predict_proba: wrong-length pixels', pg_temp.q('SELECT predict_proba(:M, ''\x01''::bytea)'),
	'22000', 'pixels have 1 bytes but the model''s input 8x8x1 needs 64'),
('forward_pass: wrong-length pixels', pg_temp.q('SELECT forward_pass(:M, substring(:P FROM 1 FOR 60))'),
	'22000', 'pixels have 60 bytes but the model''s input 8x8x1 needs 64'),
('calculate_loss: wrong-length pixels', pg_temp.q('SELECT calculate_loss(:M, ''''::bytea, 1)'),
	'22000', 'pixels have 0 bytes but the model''s input 8x8x1 needs 64'),
('calculate_loss: label -1', pg_temp.q('SELECT calculate_loss(:M, :P, -1)'),
	'22000', 'label -1 is outside the model''s classes 0..9'),
('calculate_loss: label = classes', pg_temp.q('SELECT calculate_loss(:M, :P, 10)'),
	'22000', 'label 10 is outside the model''s classes 0..9'),
('calculate_loss: label 2^31-1', pg_temp.q('SELECT calculate_loss(:M, :P, 2147483647)'),
	'22000', 'label 2147483647 is outside the model''s classes 0..9'),
('train_conv2d: label -1', 'SELECT train_conv2d(px, -1) FROM bi_rows',
	'22000', 'label -1 is outside 0..9'),
('train_conv2d: label = classes (default 10)', 'SELECT train_conv2d(px, label + 1) FROM bi_rows',
	'22000', 'label 10 is outside 0..9'),
('train_conv2d: label >= "classes" option', pg_temp.train('"classes": 3'),
	'22000', 'label 3 is outside 0..2'),
('train_conv2d: one row with another pixel count',
	'SELECT train_conv2d(CASE WHEN i = 5 THEN ''\x00''::bytea ELSE px END, label) FROM bi_rows',
	'22000', 'pixels have 1 bytes but the input shape needs 64'),
('train_conv2d: empty pixels', 'SELECT train_conv2d(''''::bytea, label) FROM bi_rows',
	'22000', 'cannot infer the image shape from 0 pixels per row, which is neither a square nor three times a square of 1 to 4096; pass "input": [h, w, c] in the options'),
('train_conv2d: 7 pixels, not a square', 'SELECT train_conv2d(''\x00010203040506''::bytea, label) FROM bi_rows',
	'22000', 'cannot infer the image shape from 7 pixels per row, which is neither a square nor three times a square of 1 to 4096; pass "input": [h, w, c] in the options'),
('train_conv2d: "input" does not match the pixels', pg_temp.train('"input": [4, 4, 1]'),
	'22000', 'pixels have 64 bytes but input [4, 4, 1] needs 16'),
('train_conv2d: every pixels value NULL', 'SELECT train_conv2d(NULL::bytea, label) FROM bi_rows',
	'22023', 'no training rows: every row was NULL or the input was empty'),
('train_conv2d: every label NULL', 'SELECT train_conv2d(px, NULL::int) FROM bi_rows',
	'22023', 'no training rows: every row was NULL or the input was empty'),
('compute_gradients: label = classes', pg_temp.q('SELECT compute_gradients(:M, px, label + 10) FROM bi_rows'),
	'22000', 'label 10 is outside the model''s classes 0..9'),
('compute_gradients: wrong-length pixels', pg_temp.q('SELECT compute_gradients(:M, px || px, label) FROM bi_rows'),
	'22000', 'pixels have 128 bytes but the model''s input 8x8x1 needs 64'),
('compute_gradients: another model half way',
	'SELECT compute_gradients(CASE WHEN r.i < 20 THEN a.blob ELSE b.blob END, r.px, r.label)
	   FROM bi_rows r, bi_model a, bi_model b WHERE a.name = ''good'' AND b.name = ''other''',
	'22023', 'the model must be the same for every row of one aggregate call'),
('evaluate: label -1', pg_temp.q('SELECT evaluate(:M, px, -1) FROM bi_rows'),
	'22000', 'label -1 is outside the model''s classes 0..9'),
('evaluate: wrong-length pixels', pg_temp.q('SELECT evaluate(:M, substring(px FROM 3), label) FROM bi_rows'),
	'22000', 'pixels have 62 bytes but the model''s input 8x8x1 needs 64');

-- ------------------------------------------------------------ update_weights
INSERT INTO bi_case (what, q, state, msg) VALUES
('update_weights: gradients of another architecture',
	'SELECT update_weights(m.blob, g.blob, 0.1) FROM bi_model m, bi_model g WHERE m.name = ''good'' AND g.name = ''grad_other''',
	'22000', 'gradients of another architecture'),
('update_weights: a model where the gradients go',
	'SELECT update_weights(m.blob, m.blob, 0.1) FROM bi_model m WHERE m.name = ''good''',
	'22023', 'the second argument of update_weights must be gradients from compute_gradients, not a model'),
('update_weights: gradients where the model goes',
	'SELECT update_weights(g.blob, g.blob, 0.1) FROM bi_model g WHERE g.name = ''grad''',
	'22023', 'the first argument of update_weights must be a model, not gradients'),
('update_weights: learning rate NaN',
	'SELECT update_weights(m.blob, g.blob, ''NaN'') FROM bi_model m, bi_model g WHERE m.name = ''good'' AND g.name = ''grad''',
	'22023', 'learning_rate must be a finite number >= 0, not NaN'),
('update_weights: learning rate +Infinity',
	'SELECT update_weights(m.blob, g.blob, ''Infinity'') FROM bi_model m, bi_model g WHERE m.name = ''good'' AND g.name = ''grad''',
	'22023', 'learning_rate must be a finite number >= 0, not Infinity'),
('update_weights: learning rate -Infinity',
	'SELECT update_weights(m.blob, g.blob, ''-Infinity'') FROM bi_model m, bi_model g WHERE m.name = ''good'' AND g.name = ''grad''',
	'22023', 'learning_rate must be a finite number >= 0, not -Infinity'),
('update_weights: negative learning rate',
	'SELECT update_weights(m.blob, g.blob, -0.01) FROM bi_model m, bi_model g WHERE m.name = ''good'' AND g.name = ''grad''',
	'22023', 'learning_rate must be a finite number >= 0, not -0.01'),
('update_weights: empty gradients',
	'SELECT update_weights(m.blob, '''', 0.1) FROM bi_model m WHERE m.name = ''good''',
	'XX001', 'model is truncated: 0 bytes is shorter than the 28-byte header'),
('update_weights: corrupt gradients (one byte flipped)',
	'SELECT update_weights(m.blob, pg_temp.flip(g.blob, 200), 0.1) FROM bi_model m, bi_model g WHERE m.name = ''good'' AND g.name = ''grad''',
	'XX001', 'model is corrupt: checksum mismatch'),
('predict: gradients where the model goes',
	'SELECT predict(g.blob, r.px) FROM bi_model g, bi_rows r WHERE g.name = ''grad'' AND r.i = 0',
	'22023', 'expected a model but got a gradient blob'),
('evaluate: gradients where the model goes',
	'SELECT evaluate(g.blob, r.px, r.label) FROM bi_model g, bi_rows r WHERE g.name = ''grad''',
	'22023', 'expected a model but got a gradient blob');

-- ------------------------------------------------------------ options: values
INSERT INTO bi_case (what, q, state, msg) VALUES
('learning_rate option negative', pg_temp.train('"learning_rate": -0.1'),
	'22023', 'option "learning_rate" must be greater than 0 and at most 10, not -0.1'),
('learning_rate option 0', pg_temp.train('"learning_rate": 0'),
	'22023', 'option "learning_rate" must be greater than 0 and at most 10, not 0'),
('learning_rate option above 10', pg_temp.train('"learning_rate": 100'),
	'22023', 'option "learning_rate" must be greater than 0 and at most 10, not 100'),
('learning_rate option "NaN" (JSON has no NaN)', pg_temp.train('"learning_rate": "NaN"'),
	'22023', 'option "learning_rate" must be a number, not a string'),
('learning_rate option "Infinity"', pg_temp.train('"learning_rate": "Infinity"'),
	'22023', 'option "learning_rate" must be a number, not a string'),
('epochs 0', pg_temp.train('"epochs": 0'),
	'22023', 'option "epochs" must be between 1 and 10000, not 0'),
('epochs -1', pg_temp.train('"epochs": -1'),
	'22023', 'option "epochs" must be between 1 and 10000, not -1'),
('epochs 10001', pg_temp.train('"epochs": 10001'),
	'22023', 'option "epochs" must be between 1 and 10000, not 10001'),
('epochs 1e12', pg_temp.train('"epochs": 1e12'),
	'22023', 'option "epochs" must be between 1 and 10000, not 1000000000000'),
('epochs 1.5', pg_temp.train('"epochs": 1.5'),
	'22023', 'option "epochs" must be an integer, not 1.5'),
('epochs as a string', pg_temp.train('"epochs": "10"'),
	'22023', 'option "epochs" must be an integer, not a string'),
('batch_size 0', pg_temp.train('"batch_size": 0'),
	'22023', 'option "batch_size" must be between 1 and 65536, not 0'),
('batch_size 65537', pg_temp.train('"batch_size": 65537'),
	'22023', 'option "batch_size" must be between 1 and 65536, not 65537'),
('batch_size larger than the 40 rows', pg_temp.train('"batch_size": 41'),
	'22023', 'batch_size 41 is larger than the 40 training rows'),
('batch_size larger than the rows left by validation_fraction', pg_temp.train('"batch_size": 30, "validation_fraction": 0.5'),
	'22023', 'batch_size 30 is larger than the 20 training rows'),
('optimizer unknown', pg_temp.train('"optimizer": "lbfgs"'),
	'22023', 'option "optimizer" must be "sgd", "momentum" or "adam", not "lbfgs"'),
('lr_schedule unknown', pg_temp.train('"lr_schedule": "linear"'),
	'22023', 'option "lr_schedule" must be "constant", "step", "cosine" or "onecycle", not "linear"'),
('normalize unknown', pg_temp.train('"normalize": "l2"'),
	'22023', 'option "normalize" must be "none", "minmax", "zscore" or "auto", not "l2"'),
('momentum 1', pg_temp.train('"momentum": 1'),
	'22023', 'option "momentum" must be at least 0 and less than 1, not 1'),
('weight_decay -1', pg_temp.train('"weight_decay": -1'),
	'22023', 'option "weight_decay" must be between 0 and 1, not -1'),
('validation_fraction 0.9', pg_temp.train('"validation_fraction": 0.9'),
	'22023', 'option "validation_fraction" must be between 0 and 0.5, not 0.9'),
('seed -1', pg_temp.train('"seed": -1'),
	'22023', 'option "seed" must be between 0 and 9007199254740992, not -1'),
('threads 1000', pg_temp.train('"threads": 1000'),
	'22023', 'option "threads" must be between 0 and 256, not 1000'),
('record_times as a string', pg_temp.train('"record_times": "yes"'),
	'22023', 'option "record_times" must be a boolean, not a string'),
('input with a zero', pg_temp.train('"input": [0, 8, 1]'),
	'22023', 'each value of option "input" must be between 1 and 4096, not 0'),
('input with two values', pg_temp.train('"input": [8, 8]'),
	'22023', 'option "input" must have 3 values [h, w, c], not 2'),
('input as a string', pg_temp.train('"input": "8x8"'),
	'22023', 'option "input" must be an array of 3 integers [h, w, c], not a string'),
('classes 1', pg_temp.train('"classes": 1'),
	'22023', 'option "classes" must be between 2 and 4096, not 1'),
('classes 5000', pg_temp.train('"classes": 5000'),
	'22023', 'option "classes" must be between 2 and 4096, not 5000'),
('options differ between rows',
	'SELECT train_conv2d(px, label, CASE WHEN i = 3 THEN ''{"epochs": 2}''::jsonb ELSE ''{"epochs": 1}'' END) FROM bi_rows',
	'22023', 'train_conv2d options must be the same for every row');

-- the value is shown shortened, so these two match a pattern
INSERT INTO bi_case (what, q, state, msg, is_like) VALUES
('learning_rate option 1e39 (infinite as a float)', pg_temp.train('"learning_rate": 1e39'),
	'22023', 'option "learning_rate" must be greater than 0 and at most 10, not 100000000000000000000%', true),
('learning_rate option 1e-50 (0 as a float)', pg_temp.train('"learning_rate": 1e-50'),
	'22023', 'option "learning_rate" must be greater than 0 and at most 10, not 0.0000000000000000000000%', true),
('epochs 1e400 (beyond any integer type)', pg_temp.train('"epochs": 1e400'),
	'22023', 'option "epochs" must be between 1 and 10000, not 100000000000000000000%', true);
INSERT INTO bi_case (what, q, state, msg) VALUES
('input height 1e10', pg_temp.train('"input": [1e10, 8, 1]'),
	'22023', 'each value of option "input" must be between 1 and 4096, not 10000000000'),
('seed 2^53 + 1 (not exact as a double)', pg_temp.train('"seed": 9007199254740993'),
	'22023', 'option "seed" must be between 0 and 9007199254740992, not 9007199254740993');

-- ------------------------------------------------------------ options: shape, keys
INSERT INTO bi_case (what, q, state, msg) VALUES
('options an array', pg_temp.train_raw('[]'), '22023', 'options must be a JSON object, not an array'),
('options an array of an object', pg_temp.train_raw('[{"epochs": 1}]'), '22023', 'options must be a JSON object, not an array'),
('options a number', pg_temp.train_raw('1'), '22023', 'options must be a JSON object, not a number'),
('options a string', pg_temp.train_raw('"epochs=1"'), '22023', 'options must be a JSON object, not a string'),
('options JSON null', pg_temp.train_raw('null'), '22023', 'options must be a JSON object, not null'),
('options a boolean', pg_temp.train_raw('true'), '22023', 'options must be a JSON object, not a boolean'),
('unknown key with a near miss', pg_temp.train('"epoch": 1'),
	'22023', 'unknown option "epoch" (did you mean "epochs"?); allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times, augment_hflip, augment_shift'),
('unknown empty key', pg_temp.train('"": 1'),
	'22023', 'unknown option ""; allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times, augment_hflip, augment_shift'),
('unknown key with a nested object', pg_temp.train('"extra": {"a": {"b": 1}}'),
	'22023', 'unknown option "extra"; allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times, augment_hflip, augment_shift'),
('options nested 100 deep under an unknown key', pg_temp.train_raw('{"x": ' || repeat('[', 100) || repeat(']', 100) || '}'),
	'22023', 'unknown option "x"; allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times, augment_hflip, augment_shift'),
('options nested 100 deep under "input"', pg_temp.train_raw('{"input": [[' || repeat('[', 100) || repeat(']', 100) || '], 1, 1]}'),
	'22023', 'each value of option "input" must be an integer, not an array'),
('options of 20014 bytes, a layer spec longer than 1023', pg_temp.train_raw('{"layers": "' || repeat('relu ', 4000) || '"}'),
	'54000', 'option "layers" is 20000 bytes long, more than the limit of 1023'),
('layers not a string', pg_temp.train_raw('{"layers": 1}'),
	'22023', 'option "layers" must be a string, not a number');

-- ------------------------------------------------------------ layer specs
INSERT INTO bi_case (what, q, state, msg) VALUES
('layers: unclosed parenthesis', pg_temp.train_raw('{"layers": "conv(4,3"}'),
	'42601', 'syntax error at position 9 (end of the layer spec): expected "," or ")" in conv(...)'),
('layers: unknown layer', pg_temp.train_raw('{"layers": "foo"}'),
	'42601', 'syntax error at position 1 near "foo": unknown layer "foo" (known: conv, maxpool, avgpool, globalavgpool, batchnorm, relu, dropout, flatten, dense, add, concat, residual, from)'),
('layers: 500 open parentheses', pg_temp.train_raw('{"layers": "' || repeat('(', 500) || '"}'),
	'42601', 'syntax error at position 1 near "((((((((((((((((((((...": expected a layer name (conv, maxpool, avgpool, globalavgpool, batchnorm, relu, dropout, flatten, dense, add, concat, residual, from)'),
('layers: conv with 0 filters', pg_temp.train_raw('{"layers": "conv(0,3) dense(10)"}'),
	'42601', 'syntax error at position 6 near "0,3)": conv filters must be between 1 and 4096, not 0'),
('layers: dense with 5000 units', pg_temp.train_raw('{"layers": "dense(5000) dense(10)"}'),
	'42601', 'syntax error at position 7 near "5000)": dense units must be between 1 and 4096, not 5000'),
('layers: kernel larger than the image', pg_temp.train_raw('{"layers": "conv(4,9) dense(10)"}'),
	'22000', 'layer 1 "conv(4,9)" does not fit its 8x8x1 input: the 9x9 window is larger than the 8x8 image'),
('layers: pooling down to nothing', pg_temp.train_raw('{"layers": "maxpool(2) maxpool(2) maxpool(2) maxpool(2) dense(10)"}'),
	'22000', 'layer 4 "maxpool(2)" does not fit its 1x1x1 input: the 2x2 window is larger than the 1x1 image'),
('layers: the default spec on 8x8 images', 'SELECT train_conv2d(px, label) FROM bi_rows',
	'22000', 'layer 6 "maxpool(2)" does not fit its 1x1x64 input: the 2x2 window is larger than the 1x1 image'),
('layers: last layer not one per class', pg_temp.train_raw('{"layers": "conv(4,3) dense(7)"}'),
	'22000', 'the last layer must output 10 values (one per class), not 7; end with dense(10)'),
('layers: conv after dense', pg_temp.train_raw('{"layers": "dense(10) conv(4,3)"}'),
	'22000', 'layer 2 "conv(4,3)" needs an image input but gets a flat vector of 10 values; put conv and pooling layers before flatten and dense'),
('layers: dropout rate 1.5', pg_temp.train_raw('{"layers": "dropout(1.5) dense(10)"}'),
	'42601', 'syntax error at position 9 near "1.5)": dropout rate must be at least 0 and less than 1, not 1.5'),
('layers: maxpool window 0', pg_temp.train_raw('{"layers": "maxpool(0) dense(10)"}'),
	'42601', 'syntax error at position 9 near "0)": maxpool window must be between 1 and 64, not 0'),
('layers: three conv(4096,3), absurdly wide', pg_temp.train_raw('{"layers": "conv(4096,3) conv(4096,3) conv(4096,3) dense(4096) dense(10)"}'),
	'54000', 'the network has more than 268435456 parameters (layer 3 "conv(4096,3)" alone has 150999040)'),
('layers: 81 layers (deeper than 64)', pg_temp.train_raw('{"layers": "' || repeat('relu ', 80) || 'dense(10)"}'),
	'54000', 'layer spec has more than 64 layers'),
('layers: 301 layers (longer than 1023 bytes)', pg_temp.train_raw('{"layers": "' || repeat('relu ', 300) || 'dense(10)"}'),
	'54000', 'option "layers" is 1509 bytes long, more than the limit of 1023'),
('layers: empty string, default spec on 8x8', pg_temp.train_raw('{"layers": ""}'),
	'22000', 'layer 6 "maxpool(2)" does not fit its 1x1x64 input: the 2x2 window is larger than the 1x1 image');

-- ------------------------------------------------------------ init_model, zero-length and tiny blobs
INSERT INTO bi_case (what, q, state, msg) VALUES
('train_conv2d: init_model of another architecture',
	'SELECT train_conv2d(r.px, r.label, ''{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8}'', m.blob)
	   FROM bi_rows r, bi_model m WHERE m.name = ''other''',
	'22000', 'the initial model''s architecture (conv(2,3) relu maxpool(2) flatten dense(10) on 8x8x1, 10 classes) differs from the options'' (conv(4,3) relu maxpool(2) flatten dense(10) on 8x8x1, 10 classes)'),
('train_conv2d: gradients as init_model',
	'SELECT train_conv2d(r.px, r.label, ''{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8}'', m.blob)
	   FROM bi_rows r, bi_model m WHERE m.name = ''grad''',
	'22023', 'expected a model but got a gradient blob'),
('train_conv2d: one-byte init_model',
	'SELECT train_conv2d(px, label, ''{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8}'', ''\x00''::bytea) FROM bi_rows',
	'XX001', 'model is truncated: 1 bytes is shorter than the 28-byte header'),
('train_conv2d: corrupt init_model',
	'SELECT train_conv2d(r.px, r.label, ''{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8}'', pg_temp.flip(m.blob, 300))
	   FROM bi_rows r, bi_model m WHERE m.name = ''good''',
	'XX001', 'model is corrupt: checksum mismatch'),
('predict: zero-length model', 'SELECT predict(''''::bytea, px) FROM bi_rows WHERE i = 0',
	'XX001', 'model is truncated: 0 bytes is shorter than the 28-byte header'),
('model_info: zero-length model', 'SELECT model_info(''''::bytea)',
	'XX001', 'model is truncated: 0 bytes is shorter than the 28-byte header'),
('model_weights: 4 random bytes', 'SELECT * FROM model_weights(''\xdeadbeef''::bytea)',
	'XX001', 'model is truncated: 4 bytes is shorter than the 28-byte header'),
('model_info: 28 bytes of text', 'SELECT model_info(convert_to(''this is not a model at all!!'', ''UTF8''))',
	'XX001', 'not an mlcnn model: bad magic number'),
('compute_gradients: zero-length model', 'SELECT compute_gradients(''''::bytea, px, label) FROM bi_rows',
	'XX001', 'model is truncated: 0 bytes is shorter than the 28-byte header'),
('evaluate: corrupt model', 'SELECT evaluate(pg_temp.flip(m.blob, 100), r.px, r.label) FROM bi_model m, bi_rows r WHERE m.name = ''good''',
	'XX001', 'model is corrupt: checksum mismatch');

-- ------------------------------------------------------------ model bytes, generated
-- Offsets of the good model's fields, from the format-2 layout in
-- src/nn/model.c: 0 magic, 8 version, 10 kind, 12 reserved, 16 length, then
-- sections of u16 tag, u64 length, payload, in tag order: architecture at
-- 24 (payload 34: h, w, c, classes, spec length at 50, spec at 54),
-- normalisation (mode, mean, std), options (u16 count, entries), counters
-- (rows trained/skipped, gradient rows, seconds), history (epoch count, 16
-- bytes per epoch), parameters (count, floats); then the CRC-32.
CREATE TEMP TABLE bi_layout AS
SELECT blob, len, speclen, norm, opts, optlen, cnt, cnt + 10 AS cntp, cnt + 42 AS hist, cnt + 52 AS histp,
	pg_temp.u32(blob, cnt + 52)::int AS nepochs,
	cnt + 56 + 16 * pg_temp.u32(blob, cnt + 52)::int AS par,
	cnt + 66 + 16 * pg_temp.u32(blob, cnt + 52)::int AS parp,
	position('\x06'::bytea || 'epochs'::bytea IN blob) - 1 AS epochs_opt
FROM (SELECT blob, len, speclen, norm, opts, optlen, opts + 10 + optlen AS cnt
      FROM (SELECT blob, len, speclen, norm, norm + 22 AS opts,
                   pg_temp.u64(blob, norm + 24)::int AS optlen
            FROM (SELECT blob, length(blob) AS len, pg_temp.u32(blob, 50)::int AS speclen,
                         54 + pg_temp.u32(blob, 50)::int AS norm
                  FROM bi_model WHERE name = 'good') a) b) c;

-- a byte flipped (xor 0xff) in every field
INSERT INTO bi_case (what, q, state, msg)
SELECT format('byte %s (%s) flipped', o, field),
	format('SELECT predict(pg_temp.flip(m.blob, %s), r.px) FROM bi_model m, bi_rows r WHERE m.name = ''good'' AND r.i = 3', o),
	'XX001',
	CASE
		WHEN o < 8 THEN 'not an mlcnn model: bad magic number'
		WHEN o = 8 THEN 'unsupported model format version 253 (this mlcnn reads versions 1 and 2)'
		WHEN o = 9 THEN 'unsupported model format version 65282 (this mlcnn reads versions 1 and 2)'
		WHEN o = 10 THEN 'model is corrupt: unknown blob kind 254'
		WHEN o = 11 THEN 'model is corrupt: unknown blob kind 65281'
		WHEN o = 12 THEN 'model is corrupt: reserved header field is 255, not 0'
		WHEN o = 15 THEN 'model is corrupt: reserved header field is 4278190080, not 0'
		WHEN o BETWEEN 16 AND 23 THEN format('model is %s: header says %s bytes but %s were given',
			CASE WHEN pg_temp.u64(pg_temp.flip(blob, o), 16) > len THEN 'truncated' ELSE 'corrupt' END,
			pg_temp.u64(pg_temp.flip(blob, o), 16), len)
		ELSE 'model is corrupt: checksum mismatch'
	END
FROM bi_layout,
LATERAL (VALUES
	(0, 'magic'), (7, 'magic'), (8, 'version'), (9, 'version'), (10, 'kind'), (11, 'kind'),
	(12, 'reserved'), (15, 'reserved'), (16, 'length'), (17, 'length'), (20, 'length'), (23, 'length'),
	(24, 'architecture tag'), (26, 'architecture length'), (34, 'input height'), (40, 'input width'),
	(43, 'input channels'), (46, 'classes'), (50, 'spec length'), (54, 'spec'), (54 + speclen - 1, 'spec'),
	(norm, 'normalisation tag'), (norm + 10, 'normalisation mode'), (norm + 15, 'normalisation mean'),
	(norm + 21, 'normalisation std'), (opts, 'options tag'), (opts + 2, 'options length'),
	(opts + 10, 'option count'), (epochs_opt + 12, 'epochs option'), (opts + 10 + optlen / 2, 'options'),
	(cnt, 'counters tag'), (cntp, 'rows trained'), (cntp + 15, 'rows skipped'), (cntp + 16, 'gradient rows'),
	(cntp + 31, 'training seconds'), (hist, 'history tag'), (histp, 'epoch count'), (histp + 8, 'history'),
	(par, 'parameters tag'), (par + 2, 'parameters length'), (parp, 'parameter count'),
	(parp + 8 + 800, 'parameters'), (len - 1, 'checksum')
) f(o, field)
ORDER BY o;

-- the blob cut at every field boundary, as it is
INSERT INTO bi_case (what, q, state, msg)
SELECT format('cut to %s bytes (before %s)', k, field),
	format('SELECT predict(substring(m.blob FROM 1 FOR %s), r.px) FROM bi_model m, bi_rows r WHERE m.name = ''good'' AND r.i = 3', k),
	'XX001',
	CASE WHEN k < 28 THEN format('model is truncated: %s bytes is shorter than the 28-byte header', k)
	     ELSE format('model is truncated: header says %s bytes but %s were given', len, k) END
FROM bi_layout,
LATERAL (VALUES
	(0, 'magic'), (8, 'version'), (10, 'kind'), (12, 'reserved'), (16, 'length'), (24, 'the first section'),
	(27, 'the end of the minimal header'), (34, 'input height'), (50, 'spec length'), (54, 'spec'),
	(norm, 'the normalisation section'), (norm + 10, 'normalisation mode'), (opts, 'the options section'),
	(epochs_opt, 'the epochs option'), (cnt, 'the counters section'), (cntp + 24, 'training seconds'),
	(hist, 'the history section'), (histp + 4, 'history'), (par, 'the parameters section'),
	(parp + 8, 'parameters'), (len - 4, 'checksum')
) f(k, field)
ORDER BY k;

-- cut at every section and field boundary past the header, with the length
-- and CRC rewritten: the reader must notice what is missing itself
CREATE TEMP TABLE bi_cut AS
SELECT k, field, msg FROM bi_layout,
LATERAL (VALUES
	(24, 'the first section', 'model is corrupt: the architecture section is missing'),
	(25, 'a section tag', 'model is truncated: a section tag needs 2 bytes but 1 remain'),
	(26, 'a section length', 'model is truncated: a section length needs 8 bytes but 0 remain'),
	(30, 'half a section length', 'model is truncated: a section length needs 8 bytes but 4 remain'),
	(34, 'the architecture payload', format('model is truncated: the architecture section needs %s bytes but 0 remain', 20 + speclen)),
	(44, 'the architecture (10 bytes of it)', format('model is truncated: the architecture section needs %s bytes but 10 remain', 20 + speclen)),
	(norm, 'the normalisation section', 'model is corrupt: the normalisation section is missing'),
	(norm + 10, 'the normalisation payload', 'model is truncated: the normalisation section needs 12 bytes but 0 remain'),
	(opts, 'the options section', 'model is corrupt: the counters section is missing'),
	(opts + 10, 'the options payload', format('model is truncated: the options section needs %s bytes but 0 remain', optlen)),
	(epochs_opt, 'the epochs option', format('model is truncated: the options section needs %s bytes but %s remain',
		optlen, epochs_opt - opts - 10)),
	(cnt, 'the counters section', 'model is corrupt: the counters section is missing'),
	(cntp, 'the counters payload', 'model is truncated: the counters section needs 32 bytes but 0 remain'),
	(hist, 'the history section', 'model is corrupt: the history section is missing'),
	(histp + 4, 'the history (half of it)', format('model is truncated: the history section needs %s bytes but 4 remain', 4 + 16 * nepochs)),
	(par, 'the parameters section', 'model is corrupt: the parameters section is missing'),
	(par + 6, 'half the parameters'' section length', 'model is truncated: a section length needs 8 bytes but 4 remain'),
	(parp + 8, 'the parameters', 'model is truncated: the parameters section needs 1648 bytes but 8 remain'),
	(len - 8, 'the last parameter', 'model is truncated: the parameters section needs 1648 bytes but 1644 remain')
) f(k, field, msg);
INSERT INTO bi_case (what, q, state, msg)
SELECT format('cut to %s bytes before %s, resealed', k, field),
	format('SELECT predict(pg_temp.reseal(substring(m.blob FROM 1 FOR %s) || ''\x00000000''::bytea), r.px)
	          FROM bi_model m, bi_rows r WHERE m.name = ''good'' AND r.i = 3', k),
	'XX001', msg
FROM bi_cut ORDER BY k;

-- single fields forged, resealed (offsets into the good model)
CREATE TEMP TABLE bi_forge AS
SELECT f.what, f.forged AS blob, f.state, f.msg, f.is_like FROM bi_layout,
LATERAL (VALUES
	('version 3', pg_temp.forge32(8, 3 + 65536), 'XX001',
		'unsupported model format version 3 (this mlcnn reads versions 1 and 2)', false),
	('version 1 over a format-2 body', pg_temp.forge32(8, 1 + 65536), 'XX001',
		'model is corrupt: input height is %, outside 1..4096', true),
	('kind 3', pg_temp.forge32(8, 2 + 3 * 65536), 'XX001', 'model is corrupt: unknown blob kind 3', false),
	('kind 2: a model relabelled as gradients', pg_temp.forge32(8, 2 + 2 * 65536), '22023',
		'expected a model but got a gradient blob', false),
	('input height 0', pg_temp.forge32(34, 0), 'XX001', 'model is corrupt: input height is 0, outside 1..4096', false),
	('input width 4097', pg_temp.forge32(38, 4097), 'XX001', 'model is corrupt: input width is 4097, outside 1..4096', false),
	('input channels -1', pg_temp.forge32(42, 4294967295), 'XX001',
		'model is corrupt: input channels is -1, outside 1..4096', false),
	('class count 0', pg_temp.forge32(46, 0), 'XX001', 'model is corrupt: class count is 0, outside 2..4096', false),
	('class count 7 (the spec ends in dense(10))', pg_temp.forge32(46, 7), 'XX001',
		'model is corrupt: its layer spec does not build: %', true),
	-- conv(4,3) on 10x8 -> 8x6x4, maxpool -> 4x3x4 = 48, dense: 480 + 10, plus 40
	('input height 10 (layers need 530 parameters)', pg_temp.forge32(34, 10), 'XX001',
		'model is corrupt: 410 parameters stored but its layers need 530', false),
	('spec length 0', pg_temp.forge32(50, 0), 'XX001', 'model is corrupt: layer spec length 0', false),
	('spec length 1024', pg_temp.forge32(50, 1024), 'XX001', 'model is corrupt: layer spec length 1024', false),
	('spec length 4 billion', pg_temp.forge32(50, 4000000000), 'XX001', 'model is corrupt: layer spec length 4000000000', false),
	('spec length one more than the section holds', pg_temp.forge32(50, speclen + 1), 'XX001',
		format('model is truncated: layer spec needs %s bytes but %s remain', speclen + 1, speclen), false),
	('spec with an unknown layer', pg_temp.reseal(set_byte(blob, 54, ascii('x'))), 'XX001',
		'model is corrupt: its layer spec does not build: syntax error at position 1 %unknown layer "xonv"%', true),
	('spec holding a NUL byte', pg_temp.reseal(set_byte(blob, 60, 0)), 'XX001',
		'model is corrupt: layer spec holds a NUL byte', false),
	('normalisation mode 3', pg_temp.forge32(norm + 10, 3), 'XX001',
		'model is corrupt: normalisation mode is 3, outside 0..2', false),
	('normalisation mean NaN', pg_temp.forge32(norm + 14, 2143289344), 'XX001',
		'model is corrupt: bad normalisation statistics', false),
	('normalisation std +Infinity', pg_temp.forge32(norm + 18, 2139095040), 'XX001',
		'model is corrupt: bad normalisation statistics', false),
	('zscore normalisation with std 0',
		pg_temp.reseal(pg_temp.put_u32(pg_temp.put_u32(blob, norm + 10, 2), norm + 18, 0)), 'XX001',
		'model is corrupt: bad normalisation statistics', false),
	('options section marked optional (so a model without options)', pg_temp.reseal(set_byte(blob, opts + 1, 128)), 'XX001',
		'model is corrupt: options are missing', false),
	('options section retagged 127, unknown and not optional', pg_temp.reseal(set_byte(blob, opts, 127)), 'XX001',
		'model has section 127, which this mlcnn does not know and may not skip (a later version wrote it?)', false),
	('options section retagged 9 (tuning) without the optional bit', pg_temp.reseal(set_byte(blob, opts, 9)), 'XX001',
		'model is corrupt: the tuning section is not marked optional', false),
	('stored option epochs 0', pg_temp.forge64(epochs_opt + 12, 0), 'XX001',
		'model is corrupt: bad options: option "epochs" must be between 1 and 10000, not 0', false),
	('stored option epochs typed as a number', pg_temp.reseal(set_byte(blob, epochs_opt + 7, 2)), 'XX001',
		'model is corrupt: option "epochs" is stored as type 2, not 1', false),
	('option count one too many', pg_temp.reseal(set_byte(blob, opts + 10, get_byte(blob, opts + 10) + 1)), 'XX001',
		'model is truncated: option name length needs 1 bytes but 0 remain', false),
	('rows trained negative', pg_temp.forge64(cntp, 9223372036854775808), 'XX001',
		'model is corrupt: rows trained is negative', false),
	('rows skipped negative', pg_temp.forge64(cntp + 8, 18446744073709551615), 'XX001',
		'model is corrupt: rows skipped is negative', false),
	('training seconds -1.0', pg_temp.forge64(cntp + 24, 13830554455654793216), 'XX001',
		'model is corrupt: bad training time', false),
	('training seconds NaN', pg_temp.forge64(cntp + 24, 9221120237041090560), 'XX001',
		'model is corrupt: bad training time', false),
	('10001 epochs of history', pg_temp.forge32(histp, 10001), 'XX001',
		'model is corrupt: 10001 epochs of history', false),
	('200 epochs of history claimed', pg_temp.forge32(histp, 200), 'XX001',
		'model is truncated: 200 epochs of history', false),
	('parameter count 411', pg_temp.forge64(parp, 411), 'XX001',
		'model is corrupt: 411 parameters stored but its layers need 410', false),
	('a parameter +Infinity', pg_temp.forge32(parp + 8 + 4 * 7, 2139095040), 'XX001',
		'model is corrupt: parameter 7 is not a finite number', false)
) f(what, forged, state, msg, is_like);
-- plus three that change the length: 4 bytes of junk inside the parameters'
-- section, the same junk as half a section header, a section twice
INSERT INTO bi_forge
SELECT '4 bytes more in the parameters section',
	pg_temp.reseal(pg_temp.put_u64(substring(blob FROM 1 FOR len - 4) || '\xabababab00000000'::bytea, par + 2, 1652)),
	'XX001', 'model is corrupt: 410 parameters need 1640 bytes but 1644 remain', false FROM bi_layout;
INSERT INTO bi_forge
SELECT '4 bytes after the last section',
	pg_temp.reseal(substring(blob FROM 1 FOR len - 4) || '\xabababab00000000'::bytea), 'XX001',
	'model is truncated: a section length needs 8 bytes but 2 remain', false FROM bi_layout;
INSERT INTO bi_forge
SELECT 'the normalisation section twice',
	pg_temp.reseal(substring(blob FROM 1 FOR len - 4) || substring(blob FROM norm + 1 FOR 22) || '\x00000000'::bytea),
	'XX001', 'model is corrupt: the normalisation section appears twice', false FROM bi_layout;
INSERT INTO bi_case (what, q, state, msg, is_like)
SELECT 'forged, resealed: ' || what,
	format('SELECT predict(%L::bytea, r.px) FROM bi_rows r WHERE r.i = 3', blob),
	state, msg, is_like
FROM bi_forge;

-- every case twice (the error, the probe), then the checks written out below
SELECT plan((SELECT count(*)::int FROM bi_case) * 2 + 6 + 9 + 4 + 10);

-- the layout is what the format says, or every generated case is moot
SELECT is(pg_temp.u32(blob, 8), 65538::bigint,
	'good model: version 2, kind 1') FROM bi_layout;
SELECT is(pg_temp.u64(blob, 16), len::numeric, 'good model: the length field is the blob length') FROM bi_layout;
SELECT is(pg_temp.u32(blob, len - 4), pg_temp.crc32(substring(blob FROM 1 FOR len - 4)),
	'good model: the trailer is the CRC-32 of the bytes before it') FROM bi_layout;
SELECT is(convert_from(substring(blob FROM 55 FOR speclen), 'UTF8'), 'conv(4,3) relu maxpool(2) flatten dense(10)',
	'good model: the spec is where the layout says') FROM bi_layout;
-- parameters: conv 4*(3*3*1)+4 = 40, dense (3*3*4)*10+10 = 370
SELECT is(pg_temp.u64(blob, parp), 410::numeric, 'good model: 410 parameters after one epoch of history, ending the body')
FROM bi_layout WHERE parp + 8 + 4 * 410 + 4 = len AND get_byte(blob, par) = 6;
-- an optional section this mlcnn does not know is skipped: the same predictions
SELECT is(
	(SELECT predict(pg_temp.reseal(substring(blob FROM 1 FOR len - 4) || '\x7f80030000000000000061626300000000'::bytea), r.px)
	 FROM bi_layout, bi_rows r WHERE r.i = 3),
	(SELECT p FROM bi_expect),
	'an unknown section marked optional (tag 0x807f) is skipped: the model predicts as before');

SELECT * FROM pg_temp.run_cases();

-- ------------------------------------------------------------ NULLs: no error, NULL out
SELECT is((SELECT predict(NULL::bytea, px) FROM bi_rows WHERE i = 0), NULL, 'predict(NULL, pixels) is NULL');
SELECT is((SELECT predict(blob, NULL::bytea) FROM bi_model WHERE name = 'good'), NULL, 'predict(model, NULL) is NULL');
SELECT is((SELECT calculate_loss(m.blob, r.px, NULL) FROM bi_model m, bi_rows r WHERE m.name = 'good' AND r.i = 0),
	NULL, 'calculate_loss(model, pixels, NULL) is NULL');
SELECT is((SELECT update_weights(blob, blob, NULL) FROM bi_model WHERE name = 'good'), NULL,
	'update_weights(model, gradients, NULL) is NULL');
SELECT is((SELECT model_info(NULL)), NULL, 'model_info(NULL) is NULL');
SELECT is((SELECT train_conv2d(px, label) FROM bi_rows WHERE false), NULL, 'train_conv2d over no rows is NULL');
SELECT is(
	(SELECT model_info(train_conv2d(CASE WHEN i % 4 = 0 THEN NULL ELSE px END, CASE WHEN i % 5 = 0 THEN NULL ELSE label END,
		'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8}')) ->> 'rows_skipped'
	 FROM bi_rows),
	'16', 'train_conv2d skips the 16 rows with NULL pixels or label (i % 4 = 0 or i % 5 = 0) and counts them');
SELECT is(
	(SELECT (evaluate(m.blob, CASE WHEN r.i < 10 THEN NULL ELSE r.px END, r.label) ->> 'skipped')
	 FROM bi_model m, bi_rows r WHERE m.name = 'good'),
	'10', 'evaluate skips and counts rows with NULL pixels');
SELECT pg_temp.alive('the NULL cases');

-- ------------------------------------------------------------ edges that must keep working
SELECT lives_ok(pg_temp.train('"batch_size": 40'), 'batch_size equal to the row count trains');
SELECT lives_ok(pg_temp.train('"learning_rate": 10, "optimizer": "sgd", "momentum": 0'), 'learning_rate at its upper bound 10 is accepted');
SELECT is((SELECT update_weights(m.blob, g.blob, 0) FROM bi_model m, bi_model g WHERE m.name = 'good' AND g.name = 'grad'),
	(SELECT blob FROM bi_model WHERE name = 'good'), 'update_weights with learning rate 0 returns the model unchanged');
SELECT pg_temp.alive('the edge cases');

-- ------------------------------------------------------------ mlcnn.max_train_memory
-- The budget (default 1 GB) is checked before training starts: a job over
-- it fails at once with a hint, not after minutes or with the server out of
-- memory. conv(4096,3) twice on 8x8 needs 4096*4096*9 weights (600 MB),
-- and as many again for gradients and each Adam moment: far over 1 GB.
SELECT is(current_setting('mlcnn.max_train_memory'), '1GB', 'mlcnn.max_train_memory defaults to 1GB');

CREATE FUNCTION pg_temp.budget_error(q text) RETURNS TABLE (state text, msg text, hint text, seconds float8)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE q;
	RETURN QUERY SELECT 'none'::text, ''::text, ''::text, 0::float8;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	seconds := extract(epoch FROM clock_timestamp() - t0);
	RETURN NEXT;
END
$$;
CREATE TEMP TABLE bi_budget AS
SELECT 'default' AS what, * FROM pg_temp.budget_error(pg_temp.train_raw(
	'{"layers": "conv(4096,3) conv(4096,3) dense(10)", "epochs": 1, "batch_size": 8}'));
SET LOCAL mlcnn.max_train_memory = '64kB';
-- 40 rows of 64 bytes fit; the small net's working memory does not
INSERT INTO bi_budget
SELECT '64kB', * FROM pg_temp.budget_error(pg_temp.train('"epochs": 10000'));
-- rows are buffered in chunks of 4096; a chunk of 400-byte rows (1.6 MB)
-- is refused before it is allocated, at the first row, not after a scan
SET LOCAL mlcnn.max_train_memory = '1MB';
INSERT INTO bi_budget
SELECT '1MB', * FROM pg_temp.budget_error($$
	SELECT train_conv2d(p, i % 10, '{"layers": "conv(2,3) dense(10)", "epochs": 1}')
	FROM generate_series(1, 100000) i, (SELECT decode(repeat('7f', 400), 'hex') AS p) x$$);
RESET mlcnn.max_train_memory;

SELECT is(state, '54000', 'an absurd architecture hits the default budget: program_limit_exceeded')
FROM bi_budget WHERE what = 'default';
SELECT ok(msg LIKE 'training needs % kB, more than mlcnn.max_train_memory (1048576 kB)',
	'the message gives the need and the setting: ' || msg)
FROM bi_budget WHERE what = 'default';
SELECT is(hint, 'Raise mlcnn.max_train_memory, or train on fewer rows.', 'the budget error has a hint')
FROM bi_budget WHERE what = 'default';
SELECT cmp_ok(seconds, '<', 1.0::float8, 'the budget error comes before training starts (under 1 s)')
FROM bi_budget WHERE what = 'default';
SELECT ok(state = '54000' AND msg LIKE 'training needs % kB, more than mlcnn.max_train_memory (64 kB)',
	'SET mlcnn.max_train_memory = 64kB refuses a 10000-epoch job: ' || state || ' ' || msg)
FROM bi_budget WHERE what = '64kB';
SELECT cmp_ok(seconds, '<', 1.0::float8, 'and at once: no epoch ran (under 1 s)') FROM bi_budget WHERE what = '64kB';
SELECT ok(state = '54000' AND msg LIKE 'training needs % kB, more than mlcnn.max_train_memory (1024 kB)',
	'buffering 100,000 rows of 400 bytes under 1MB fails: ' || state || ' ' || msg)
FROM bi_budget WHERE what = '1MB';
SELECT cmp_ok(seconds, '<', 1.0::float8, 'and before the rows are all read (under 1 s)') FROM bi_budget WHERE what = '1MB';
SELECT pg_temp.alive('the memory budget errors');

SELECT * FROM finish();
ROLLBACK;
