-- pgTAP: the hostile-models matrix. Every blob that test/forge writes
-- (build/testdata/forged: checksum-valid models with hostile shapes, made by
-- the core's own writer, see test/forge.c and its manifest.txt) is fed to
-- every SQL function that takes a model: predict, predict_proba,
-- forward_pass, calculate_loss (pixels of the model's declared input when
-- they are at most 16 MiB, else 64 bytes), evaluate and compute_gradients
-- (three rows), update_weights (the model with the forged gradient blob),
-- model_info, model_weights, and train_conv2d with the blob as init_model
-- (two rows, the blob's own architecture as options).
--
-- Each case runs as its own top-level statement (\gexec), as an ordinary
-- role, under statement_timeout = 2s. It must end in the SQLSTATE listed in
-- hm_expect below (54000 for the memory budgets, 57014 for the timeout of
-- the huge-arithmetic model, 22000/22023 where the input is simply wrong)
-- or succeed ('ok'), within 3 s; the budget errors within 100 ms. After
-- each, a statement of its own checks that the backend still predicts a
-- known good model's rows exactly as it did at the start (logits compared
-- as text, bit for bit). The time to each outcome is printed. Outcomes
-- that are defects rather than design (hm_known, empty now, and the KNOWN
-- ISSUE assertion) are checked as they are today, so that a fix shows up here.
-- Then: mlcnn.max_inference_memory is a superuser's setting, its ERROR
-- names what one image needs and the limit, and raising it to 0 (no limit)
-- lets the moderately large legal model run.
--
-- Run by scripts/test.sh as a superuser in a database with the extensions
-- pgtap and mlcnn. Test data: mlcnn_test_data/forged. Everything is rolled back.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;

CREATE ROLE mlcnn_hm_plain;

-- ------------------------------------------------------------ the good model
-- 40 synthetic 8x8 rows: pixel j of row i is (7i + 3j) mod 256, label i mod 10
CREATE TEMP TABLE hm_rows AS
SELECT i, i % 10 AS label,
	(SELECT decode(string_agg(lpad(to_hex((7 * i + 3 * j) % 256), 2, '0'), '' ORDER BY j), 'hex')
	   FROM generate_series(0, 63) j) AS px
FROM generate_series(0, 39) i;
CREATE TEMP TABLE hm_good AS
SELECT train_conv2d(px, label,
	'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8, "record_times": false}') AS blob
FROM hm_rows;

-- what the good model says about every row: classes and logits (as text, exact)
CREATE FUNCTION pg_temp.hm_answers() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(predict(g.blob, r.px) || ':' || forward_pass(g.blob, r.px)::text, ' ' ORDER BY r.i)
	FROM hm_good g, hm_rows r $$;
CREATE TEMP TABLE hm_reference AS SELECT pg_temp.hm_answers() AS answers;

-- ------------------------------------------------------------ the forged blobs
-- the manifest: name, kind, input, classes, parameters, blob bytes, work bytes
-- of one image (inference, training), multiply-adds, largest buffer, spec, expected
CREATE TEMP TABLE hm_blob AS
SELECT n AS ord, f[1] AS name, f[2] AS kind,
	split_part(f[3], 'x', 1)::int AS h, split_part(f[3], 'x', 2)::int AS w, split_part(f[3], 'x', 3)::int AS c,
	f[4]::int AS classes, f[5]::bigint AS params, f[6]::bigint AS blob_bytes,
	f[7]::numeric AS work_bytes, f[8]::numeric AS train_bytes, f[9]::numeric AS macs,
	f[11] AS spec, f[12] AS expected,
	pg_read_binary_file('mlcnn_test_data/forged/' || f[1] || '.bin') AS blob
FROM (SELECT n, string_to_array(line, E'\t') AS f
      FROM regexp_split_to_table(pg_read_file('mlcnn_test_data/forged/manifest.txt'), E'\n') WITH ORDINALITY l(line, n)
      WHERE line <> '' AND line NOT LIKE '#%') m;
ALTER TABLE hm_blob ALTER COLUMN blob SET STORAGE EXTERNAL;

-- the functions, each a query over $1 the blob, $2 pixels, $3 the forged
-- gradient blob and $4 training options of the blob's own architecture
CREATE TEMP TABLE hm_fn (ord int PRIMARY KEY, fn text, q text);
INSERT INTO hm_fn VALUES
	(1, 'predict', 'SELECT predict($1, $2)'),
	(2, 'predict_proba', 'SELECT predict_proba($1, $2)'),
	(3, 'forward_pass', 'SELECT forward_pass($1, $2)'),
	(4, 'calculate_loss', 'SELECT calculate_loss($1, $2, 0)'),
	(5, 'evaluate', 'SELECT evaluate($1, $2, i % 2) FROM generate_series(1, 3) i'),
	(6, 'compute_gradients', 'SELECT compute_gradients($1, $2, i % 2) FROM generate_series(1, 3) i'),
	(7, 'update_weights', 'SELECT update_weights($1, $3, 0.1)'),
	(8, 'model_info', 'SELECT model_info($1)'),
	(9, 'model_weights', 'SELECT count(*), sum(cardinality(weights)) FROM model_weights($1)'),
	(10, 'train_conv2d init_model', 'SELECT train_conv2d($2, i % 2, $4, $1) FROM generate_series(1, 2) i');

-- expected outcome per blob, one SQLSTATE (or ok) per function in hm_fn order:
-- predict, predict_proba, forward_pass, calculate_loss, evaluate,
-- compute_gradients, update_weights, model_info, model_weights, train_conv2d
CREATE TEMP TABLE hm_expect (name text PRIMARY KEY, states text[]);
INSERT INTO hm_expect VALUES
	-- over the inference budget; update_weights with its own gradients works; training over its budget
	('maxpool_overflow', '{54000,54000,54000,54000,54000,54000,ok,ok,ok,54000}'),
	('huge_activations', '{54000,54000,54000,54000,54000,54000,22000,ok,ok,54000}'),
	-- within the inference budget but 17 G compares: the timeout stops it, gradients too
	('huge_arithmetic', '{57014,57014,57014,57014,57014,57014,22000,ok,ok,57014}'),
	-- legal models: they work
	('largest_spec', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('conv_same63', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('conv_stride64', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('maxpool_window', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('dense_4096', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('classes_4096', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('dropout_0999', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	('flatten_wide', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,ok}'),
	-- infinite inputs: NaN logits and gradients (evaluate's loss is null); training reports divergence
	('zscore_denormal', '{ok,ok,ok,ok,ok,ok,22000,ok,ok,22000}'),
	-- 64 GiB of pixels: over the budget before any pixel is looked at; training refuses the pixels
	('input_4096_cubed', '{54000,54000,54000,54000,54000,54000,22000,ok,ok,22000}'),
	-- over the 256 MB inference budget; training's budget (1 GB) holds it
	('moderate', '{54000,54000,54000,54000,54000,54000,22000,ok,ok,ok}'),
	-- a gradient blob where a model goes
	('gradient', '{22023,22023,22023,22023,22023,22023,22023,ok,ok,22023}');

-- the outcomes above that are defects of mlcnn rather than what it should do
-- (each reported); they are checked as they are, so that a change shows
CREATE TEMP TABLE hm_known (name text, fn text, ms_limit float8, note text, PRIMARY KEY (name, fn));
INSERT INTO hm_known VALUES
	('none', 'none', 0, 'placeholder: no outcome is a known defect now');

-- the cases, in the order of the manifest; budget errors must come within 100 ms, the rest within 3 s
CREATE TEMP TABLE hm_case AS
SELECT row_number() OVER (ORDER BY b.ord, f.ord)::int AS id, b.name, f.fn, f.q, e.states[f.ord] AS want,
	coalesce(k.ms_limit, CASE WHEN e.states[f.ord] = '54000' THEN 100 ELSE 3000 END) AS ms_limit,
	k.note
FROM hm_blob b
JOIN hm_expect e USING (name) CROSS JOIN hm_fn f
LEFT JOIN hm_known k ON k.name = b.name AND k.fn = f.fn;
CREATE TEMP TABLE hm_result (id int PRIMARY KEY, state text, msg text, ms float8, alive boolean);

-- one case: its query on the blob, timed, with the outcome recorded
CREATE FUNCTION pg_temp.hm_run(case_id int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	c record;
	b bytea;
	p bytea;
	g bytea;
	opts jsonb;
	t0 timestamptz;
	st text := 'ok';
	m text := '';
BEGIN
	SELECT k.q, x.* INTO c FROM hm_case k JOIN hm_blob x USING (name) WHERE k.id = case_id;
	b := c.blob;
	g := (SELECT blob FROM hm_blob WHERE name = 'gradient');
	p := CASE WHEN c.h::bigint * c.w * c.c <= 16777216 THEN convert_to(repeat('x', c.h * c.w * c.c), 'UTF8')
	     ELSE convert_to(repeat('x', 64), 'UTF8') END;
	opts := jsonb_build_object('layers', c.spec, 'input', jsonb_build_array(c.h, c.w, c.c),
	                           'classes', c.classes, 'epochs', 1, 'batch_size', 2, 'record_times', false);
	t0 := clock_timestamp();
	BEGIN
		EXECUTE c.q USING b, p, g, opts;
	EXCEPTION
		WHEN query_canceled THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
		WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
	END;
	INSERT INTO hm_result (id, state, msg, ms)
	VALUES (case_id, st, m, extract(epoch FROM clock_timestamp() - t0) * 1000);
END
$$;

-- after a case: does the backend still give the good model's answers?
CREATE FUNCTION pg_temp.hm_alive(case_id int) RETURNS void LANGUAGE sql AS $$
	UPDATE hm_result SET alive = (pg_temp.hm_answers() = (SELECT answers FROM hm_reference))
	WHERE id = case_id $$;

GRANT SELECT ON hm_rows, hm_good, hm_reference, hm_blob, hm_case TO mlcnn_hm_plain;
GRANT SELECT, INSERT, UPDATE ON hm_result TO mlcnn_hm_plain;

-- ------------------------------------------------------------ the matrix, as an ordinary role
SET LOCAL ROLE mlcnn_hm_plain;
SET LOCAL statement_timeout = '2s';
\o /dev/null
SELECT format('SELECT pg_temp.hm_run(%s)', id), format('SELECT pg_temp.hm_alive(%s)', id)
FROM hm_case ORDER BY id
\gexec
\o
SET LOCAL statement_timeout = 0;
RESET ROLE;

-- ------------------------------------------------------------ outcomes
-- the need a budget error names, in kB
CREATE FUNCTION pg_temp.need_kb(msg text) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
	SELECT (regexp_match(msg, 'needs (\d+) kB'))[1]::numeric $$;
CREATE TEMP VIEW hm_out AS
SELECT k.*, r.state, r.msg, r.ms, r.alive, b.work_bytes, b.train_bytes
FROM hm_case k JOIN hm_result r USING (id) JOIN hm_blob b USING (name);

SELECT plan((SELECT 3 * count(*)::int + 17 FROM hm_case));

SELECT is((SELECT count(*)::int FROM hm_blob), 15, 'the manifest lists the 15 forged blobs and every one was read');

-- each case: its outcome, its time, and the backend afterwards
SELECT ok(state = want,
	format('%s: %s ends in %s after %s ms%s', name, fn, CASE WHEN state = 'ok' THEN 'success' ELSE state END,
	       round(ms::numeric, 1), coalesce(' (' || note || ')', '')))
	|| CASE WHEN state = want THEN '' ELSE E'\n' || diag(format('    wanted %s, got %s: %s', want, state, msg)) END
FROM hm_out ORDER BY id;
SELECT cmp_ok(ms, '<', ms_limit, format('%s: %s took %s ms, under %s ms', name, fn, round(ms::numeric, 1), ms_limit))
FROM hm_out ORDER BY id;
SELECT ok(alive, format('%s: %s: afterwards the backend predicts the good model''s rows exactly as before', name, fn))
FROM hm_out ORDER BY id;

-- the errors say what one image needs and what the limit is
SELECT is((SELECT string_agg(name || ' ' || fn || ': ' || msg, E'\n') FROM hm_out
           WHERE state = '54000'
             AND msg !~ '^(the model|compute_gradients) needs \d+ kB for one image, more than mlcnn\.max_inference_memory \(262144 kB\)$'
             AND msg !~ '^training needs \d+ kB, more than mlcnn\.max_train_memory \(1048576 kB\)$'),
	NULL, 'every budget error names the kB one image (or the training) needs and the limit in kB');
SELECT is((SELECT string_agg(format('%s %s: %s kB named, the bound says %s kB', name, fn, pg_temp.need_kb(msg),
                                    floor(CASE WHEN msg LIKE 'training%' THEN train_bytes ELSE work_bytes END / 1024)), E'\n')
           FROM hm_out WHERE state = '54000'
             AND pg_temp.need_kb(msg) < floor(CASE WHEN msg LIKE 'training%' THEN train_bytes ELSE work_bytes END / 1024)),
	NULL, 'the need each budget error names is at least the nn_net_bound figure of the manifest (work bytes of one image)');
SELECT is((SELECT string_agg(name || ' ' || fn || ': ' || msg, E'\n') FROM hm_out
           WHERE state = '57014' AND msg <> 'canceling statement due to statement timeout'),
	NULL, 'every 57014 is the statement timeout');
SELECT cmp_ok((SELECT min(ms) FROM hm_out WHERE name = 'huge_arithmetic' AND state = '57014'), '>=', 1900::float8,
	'the huge-arithmetic model runs until the 2 s timeout (it is within the memory budget)');
SELECT diag(format('%s: %s outcomes, median %s ms, max %s ms', state, count(*),
                   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1), round(max(ms)::numeric, 1)))
FROM hm_out GROUP BY state ORDER BY state;
SELECT diag(format('budget errors (54000): median %s ms, max %s ms (%s)',
                   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1), round(max(ms)::numeric, 1),
                   (SELECT name || ' ' || fn FROM hm_out WHERE state = '54000' ORDER BY ms DESC LIMIT 1)))
FROM hm_out WHERE state = '54000';

-- the known issues, as they are
SELECT is((SELECT msg FROM hm_out WHERE name = 'input_4096_cubed' AND fn = 'train_conv2d init_model'),
	'pixels have 64 bytes but input [4096, 4096, 4096] needs 68719476736',
	'train_conv2d''s pixel error counts h*w*c in 64 bits: 4096x4096x4096 needs 68719476736');
SELECT throws_ok(
	$$SELECT update_weights(b.blob, compute_gradients(b.blob, convert_to(repeat('x', 64), 'UTF8'), 0), 0.1)
	  FROM hm_blob b WHERE name = 'zscore_denormal' GROUP BY b.blob$$,
	'XX001', 'model is corrupt: parameter 0 is not a finite number',
	'KNOWN ISSUE: compute_gradients returns non-finite gradients in a blob that update_weights refuses');

-- ------------------------------------------------------------ mlcnn.max_inference_memory
SET LOCAL ROLE mlcnn_hm_plain;
SELECT throws_ok($$SET mlcnn.max_inference_memory = 0$$, '42501',
	'permission denied to set parameter "mlcnn.max_inference_memory"',
	'an ordinary role may not lift mlcnn.max_inference_memory');
SELECT throws_ok($$SELECT set_config('mlcnn.max_inference_memory', '1GB', true)$$, '42501',
	'permission denied to set parameter "mlcnn.max_inference_memory"',
	'nor raise it with set_config');
RESET ROLE;

-- the moderately large legal model: 1024x1024 pixels, about 300 MB of activations
CREATE TEMP TABLE hm_moderate AS
SELECT b.blob, convert_to(repeat('x', 1048576), 'UTF8') AS px,
	(SELECT pg_temp.need_kb(msg) FROM hm_out WHERE name = 'moderate' AND fn = 'predict') AS need
FROM hm_blob b WHERE name = 'moderate';
SELECT throws_ok('SELECT predict(blob, px) FROM hm_moderate',
	'54000', format('the model needs %s kB for one image, more than mlcnn.max_inference_memory (262144 kB)',
	                (SELECT need FROM hm_moderate)),
	format('under the default 256 MB the moderate model fails, naming its need (%s kB) and the limit',
	       (SELECT need FROM hm_moderate)));
SET LOCAL mlcnn.max_inference_memory = 0;
CREATE TEMP TABLE hm_lifted AS
SELECT clock_timestamp() AS t0, (SELECT predict(blob, px) FROM hm_moderate) AS p, clock_timestamp() AS t1;
SELECT ok((SELECT p IN (0, 1) FROM hm_lifted),
	format('with mlcnn.max_inference_memory = 0 (no limit) a superuser runs it: predict in %s ms',
	       (SELECT round(extract(epoch FROM t1 - t0)::numeric * 1000, 1) FROM hm_lifted)));
-- (not evaluate: without a limit it sizes its buffers for a batch of 32 images, 32 x 300 MB)
SET LOCAL mlcnn.max_inference_memory = '512MB';
CREATE TEMP TABLE hm_raised AS
SELECT clock_timestamp() AS t0, (SELECT evaluate(blob, px, i % 2) FROM hm_moderate, generate_series(1, 3) i) AS e,
	clock_timestamp() AS t1;
SELECT is((SELECT (e->>'rows')::int FROM hm_raised), 3,
	format('with 512 MB its evaluate shrinks the batch to one image and runs 3 rows in %s ms',
	       (SELECT round(extract(epoch FROM t1 - t0)::numeric * 1000, 1) FROM hm_raised)));
\o /dev/null
SELECT set_config('mlcnn.max_inference_memory', ((SELECT need FROM hm_moderate) + 1) || 'kB', true);
\o
SELECT lives_ok('SELECT predict(blob, px) FROM hm_moderate',
	'a limit of one kB more than the named need is enough');
\o /dev/null
SELECT set_config('mlcnn.max_inference_memory', ((SELECT need FROM hm_moderate) - 1) || 'kB', true);
\o
SELECT throws_like('SELECT predict(blob, px) FROM hm_moderate',
	'the model needs % kB for one image, more than mlcnn.max_inference_memory%',
	'one kB less is not');
RESET mlcnn.max_inference_memory;
-- ONNX: every forged model exports and imports back as the same network
-- (export allocates no activations, import builds and bounds the spec);
-- the forged gradient blob is refused
SELECT is((SELECT count(*)::int FROM hm_blob
           WHERE kind = 'model'
             AND model_info(model_from_onnx(model_to_onnx(blob)))->'parameters' = model_info(blob)->'parameters'),
          (SELECT count(*)::int FROM hm_blob WHERE kind = 'model'),
          'every forged model exports to ONNX and imports back with its parameter count');
SELECT throws_ok($$SELECT model_to_onnx(blob) FROM hm_blob WHERE kind = 'gradients'$$, '22023',
	'model_to_onnx takes a model, not a gradient blob', 'the forged gradient blob is no ONNX model');
SELECT is(pg_temp.hm_answers(), (SELECT answers FROM hm_reference),
	'at the end the backend still predicts the good model''s rows exactly as at the start');

SELECT * FROM finish();
ROLLBACK;
