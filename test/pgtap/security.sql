-- pgTAP: the security properties of mlcnn's SQL surface.
--   * no SECURITY DEFINER function; every function of the extension has the
--     STRICT, volatility, PARALLEL and language labels of an explicit list
--     (a new function fails this test until it is added to the list);
--   * the install script of the default version and every update script
--     name every object they create or use with @extschema@ (or leave it to
--     pg_catalog), and CREATE EXTENSION (fresh, or 0.1.0 then ALTER
--     EXTENSION UPDATE) under a hostile search_path binds to pg_catalog and
--     the extension's own objects;
--   * the extension is not trusted: only superusers create it;
--   * load_idx is refused to roles without pg_read_server_files, while an
--     ordinary role can use everything else.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn
-- (installed in public). Everything is rolled back, including the DROP and
-- re-CREATE of the extension.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(39);

-- the functions of the extension (pg_depend deptype 'e'), whatever schema
CREATE TEMP VIEW sec_fn AS
SELECT p.oid, p.proname::text AS name, pg_catalog.oidvectortypes(p.proargtypes) AS args,
	p.prokind::text AS kind, p.proisstrict AS strict, p.provolatile::text AS volatility,
	p.proparallel::text AS parallel, l.lanname::text AS lang, p.prosecdef AS secdef,
	p.pronamespace, p.proconfig
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'mlcnn';

-- ------------------------------------------------------------ labels
SELECT is((SELECT count(*)::int FROM sec_fn WHERE secdef), 0, 'no mlcnn function is SECURITY DEFINER');
SELECT is((SELECT count(*)::int FROM sec_fn WHERE proconfig IS NOT NULL), 0,
	'no mlcnn function carries SET options (nothing depends on search_path at run time)');

-- Why each label:
--   load_idx: STRICT; VOLATILE (reads files that can change); PARALLEL SAFE.
--   train transition/combine: not STRICT (NULL rows are counted as skipped).
--   train final: VOLATILE, the model may record wall-clock times.
--   predict & co: STRICT IMMUTABLE PARALLEL SAFE, pure functions of their bytes.
--   mlcnn_stats, mlcnn_stats_reset: VOLATILE, PARALLEL RESTRICTED (backend-local state).
-- Aggregates are rows of pg_proc too (kind 'a', language internal).
SELECT set_eq(
	'SELECT name, args, kind, strict, volatility, parallel, lang FROM sec_fn',
	$$VALUES
	('load_idx', 'text, text', 'f', true, 'v', 's', 'c'),
	('mlcnn_train_transfn', 'internal, bytea, integer', 'f', false, 'i', 's', 'c'),
	('mlcnn_train_transfn', 'internal, bytea, integer, jsonb', 'f', false, 'i', 's', 'c'),
	('mlcnn_train_transfn', 'internal, bytea, integer, jsonb, bytea', 'f', false, 'i', 's', 'c'),
	('mlcnn_train_combinefn', 'internal, internal', 'f', false, 'i', 's', 'c'),
	('mlcnn_train_serialfn', 'internal', 'f', true, 'i', 's', 'c'),
	('mlcnn_train_deserialfn', 'bytea, internal', 'f', true, 'i', 's', 'c'),
	('mlcnn_train_finalfn', 'internal', 'f', false, 'v', 's', 'c'),
	('train_conv2d', 'bytea, integer', 'a', false, 'i', 's', 'internal'),
	('train_conv2d', 'bytea, integer, jsonb', 'a', false, 'i', 's', 'internal'),
	('train_conv2d', 'bytea, integer, jsonb, bytea', 'a', false, 'i', 's', 'internal'),
	('predict', 'bytea, bytea', 'f', true, 'i', 's', 'c'),
	('predict_proba', 'bytea, bytea', 'f', true, 'i', 's', 'c'),
	('forward_pass', 'bytea, bytea', 'f', true, 'i', 's', 'c'),
	('calculate_loss', 'bytea, bytea, integer', 'f', true, 'i', 's', 'c'),
	('update_weights', 'bytea, bytea, real', 'f', true, 'i', 's', 'c'),
	('model_info', 'bytea', 'f', true, 'i', 's', 'c'),
	('model_weights', 'bytea', 'f', true, 'i', 's', 'c'),
	('model_to_onnx', 'bytea', 'f', true, 'i', 's', 'c'),
	('model_from_onnx', 'bytea, jsonb', 'f', true, 'i', 's', 'c'),
	('decode_image', 'bytea, integer, integer, integer', 'f', true, 'i', 's', 'c'),
	('load_images', 'text', 'f', true, 'v', 's', 'c'),
	('mlcnn_gradients_transfn', 'bytea, bytea, bytea, integer', 'f', false, 'i', 's', 'c'),
	('mlcnn_gradients_combinefn', 'bytea, bytea', 'f', false, 'i', 's', 'c'),
	('mlcnn_gradients_finalfn', 'bytea', 'f', false, 'i', 's', 'c'),
	('compute_gradients', 'bytea, bytea, integer', 'a', false, 'i', 's', 'internal'),
	('mlcnn_evaluate_transfn', 'bytea, bytea, bytea, integer', 'f', false, 'i', 's', 'c'),
	('mlcnn_evaluate_combinefn', 'bytea, bytea', 'f', false, 'i', 's', 'c'),
	('mlcnn_evaluate_finalfn', 'bytea', 'f', false, 'i', 's', 'c'),
	('evaluate', 'bytea, bytea, integer', 'a', false, 'i', 's', 'internal'),
	('mlcnn_train_transfn', 'internal, real[], integer', 'f', false, 'i', 's', 'c'),
	('mlcnn_train_transfn', 'internal, real[], integer, jsonb', 'f', false, 'i', 's', 'c'),
	('mlcnn_train_transfn', 'internal, real[], integer, jsonb, bytea', 'f', false, 'i', 's', 'c'),
	('train_conv2d', 'real[], integer', 'a', false, 'i', 's', 'internal'),
	('train_conv2d', 'real[], integer, jsonb', 'a', false, 'i', 's', 'internal'),
	('train_conv2d', 'real[], integer, jsonb, bytea', 'a', false, 'i', 's', 'internal'),
	('predict', 'bytea, real[]', 'f', true, 'i', 's', 'c'),
	('predict_proba', 'bytea, real[]', 'f', true, 'i', 's', 'c'),
	('forward_pass', 'bytea, real[]', 'f', true, 'i', 's', 'c'),
	('calculate_loss', 'bytea, real[], integer', 'f', true, 'i', 's', 'c'),
	('mlcnn_gradients_transfn', 'bytea, bytea, real[], integer', 'f', false, 'i', 's', 'c'),
	('compute_gradients', 'bytea, real[], integer', 'a', false, 'i', 's', 'internal'),
	('mlcnn_evaluate_transfn', 'bytea, bytea, real[], integer', 'f', false, 'i', 's', 'c'),
	('evaluate', 'bytea, real[], integer', 'a', false, 'i', 's', 'internal'),
	('mlcnn_tune_transfn', 'internal, bytea, integer, jsonb', 'f', false, 'i', 's', 'c'),
	('mlcnn_tune_transfn', 'internal, real[], integer, jsonb', 'f', false, 'i', 's', 'c'),
	('mlcnn_tune_finalfn', 'internal', 'f', false, 'v', 's', 'c'),
	('tune_conv2d', 'bytea, integer, jsonb', 'a', false, 'i', 's', 'internal'),
	('tune_conv2d', 'real[], integer, jsonb', 'a', false, 'i', 's', 'internal'),
	('mlcnn_average_transfn', 'bytea, bytea, double precision', 'f', false, 'i', 's', 'c'),
	('mlcnn_average_combinefn', 'bytea, bytea', 'f', false, 'i', 's', 'c'),
	('mlcnn_average_finalfn', 'bytea', 'f', false, 'i', 's', 'c'),
	('average_models', 'bytea, double precision', 'a', false, 'i', 's', 'internal'),
	('train_distributed', 'regclass, jsonb', 'f', true, 'v', 'u', 'c'),
	('evaluate_partial', 'bytea, bytea, integer', 'a', false, 'i', 's', 'internal'),
	('evaluate_partial', 'bytea, real[], integer', 'a', false, 'i', 's', 'internal'),
	('evaluate_combine', 'bytea', 'a', false, 'i', 's', 'internal'),
	('compute_gradients_partial', 'bytea, bytea, integer', 'a', false, 'i', 's', 'internal'),
	('compute_gradients_partial', 'bytea, real[], integer', 'a', false, 'i', 's', 'internal'),
	('compute_gradients_combine', 'bytea', 'a', false, 'i', 's', 'internal'),
	('mlcnn_stats', '', 'f', false, 'v', 'r', 'c'),
	('mlcnn_stats_reset', '', 'f', false, 'v', 'r', 'c')
	$$,
	'every mlcnn function has the STRICT, volatility, PARALLEL and language labels of the list, and no other function exists');

-- ------------------------------------------------------------ the install script, read as text
-- the full script of the default version (what CREATE EXTENSION runs)
CREATE TEMP TABLE sec_script AS
SELECT n AS line_no, line
FROM regexp_split_to_table(
	pg_read_file((SELECT setting FROM pg_config WHERE name = 'SHAREDIR') || '/extension/mlcnn--' ||
	             (SELECT default_version FROM pg_available_extensions WHERE name = 'mlcnn') || '.sql'),
	E'\n') WITH ORDINALITY AS s(line, n);
-- and every update script (what ALTER EXTENSION mlcnn UPDATE runs)
CREATE TEMP TABLE sec_update AS
SELECT f AS script, n AS line_no, line
FROM pg_ls_dir((SELECT setting FROM pg_config WHERE name = 'SHAREDIR') || '/extension') f,
LATERAL regexp_split_to_table(
	pg_read_file((SELECT setting FROM pg_config WHERE name = 'SHAREDIR') || '/extension/' || f),
	E'\n') WITH ORDINALITY AS s(line, n)
WHERE f ~ '^mlcnn--[0-9.]+--[0-9.]+\.sql$';

SELECT cmp_ok((SELECT count(*)::int FROM sec_script WHERE line ~* '^\s*CREATE\s'), '>=', 25,
	'the installed script was read (it creates at least 25 objects)');
-- every CREATE names its object with @extschema@ (no OR REPLACE: it must not take over existing objects)
SELECT is(
	(SELECT string_agg(line_no || ': ' || line, E'\n') FROM sec_script
	 WHERE line ~* '^\s*CREATE\s' AND line !~* '^\s*CREATE\s+(FUNCTION|AGGREGATE|VIEW|TABLE|TYPE|DOMAIN|OPERATOR|CAST|SEQUENCE)\s+@extschema@\.'),
	NULL, 'every CREATE in the script is of @extschema@.<name>, without OR REPLACE');
SELECT is(
	(SELECT string_agg(line_no || ': ' || line, E'\n') FROM sec_script
	 WHERE line ~* '^\s*COMMENT\s+ON\s' AND line !~* '^\s*COMMENT\s+ON\s+(FUNCTION|AGGREGATE|VIEW|TABLE|TYPE)\s+@extschema@\.'),
	NULL, 'every COMMENT ON in the script names @extschema@.<name>');
SELECT is(
	(SELECT string_agg(line_no || ': ' || line, E'\n') FROM sec_script
	 WHERE line ~* '^\s*(SFUNC|FINALFUNC|COMBINEFUNC|SERIALFUNC|DESERIALFUNC|MSFUNC|MINVFUNC|MFINALFUNC)\s*='
	   AND line !~* '=\s*@extschema@\.'),
	NULL, 'every aggregate support function is named with @extschema@');
SELECT is(
	(SELECT string_agg(line_no || ': ' || line, E'\n') FROM sec_script
	 WHERE line ~* '\m(FROM|JOIN)\s+[a-z_"]' AND line !~* '\m(FROM|JOIN)\s+(@extschema@|pg_catalog)\.'
	   AND line !~* '^\s*(--|COMMENT\s)' AND line !~ '^''' AND line !~ '^\\echo'),
	NULL, 'every FROM/JOIN of a view reads @extschema@ or pg_catalog');
SELECT is((SELECT count(*)::int FROM sec_script WHERE line ~* 'SECURITY\s+DEFINER' AND line !~ '^\s*--'), 0,
	'the script has no SECURITY DEFINER');
SELECT is(
	(SELECT string_agg(script || ':' || line_no || ': ' || line, E'\n') FROM sec_update
	 WHERE (line ~* '^\s*CREATE\s' AND line !~* '^\s*CREATE\s+(FUNCTION|AGGREGATE|VIEW|TABLE|TYPE|DOMAIN|OPERATOR|CAST|SEQUENCE)\s+@extschema@\.')
	    OR (line ~* '^\s*COMMENT\s+ON\s' AND line !~* '^\s*COMMENT\s+ON\s+(FUNCTION|AGGREGATE|VIEW|TABLE|TYPE)\s+@extschema@\.')
	    OR (line ~* 'SECURITY\s+DEFINER' AND line !~ '^\s*--')
	    OR (line ~* '\m(FROM|JOIN)\s+[a-z_"]' AND line !~* '\m(FROM|JOIN)\s+(@extschema@|pg_catalog)\.'
	        AND line !~* '^\s*(--|COMMENT\s)' AND line !~ '^''' AND line !~ '^\\echo')),
	NULL, 'the update scripts (' || (SELECT count(DISTINCT script) FROM sec_update) ||
	') follow the same rules: @extschema@ names, no SECURITY DEFINER');

-- ------------------------------------------------------------ roles
CREATE ROLE mlcnn_sec_plain;
CREATE ROLE mlcnn_sec_reader IN ROLE pg_read_server_files;
-- pgTAP keeps its state in temporary tables; let the roles use them
DO $$
BEGIN
	EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA %s TO mlcnn_sec_plain, mlcnn_sec_reader',
	               pg_my_temp_schema()::regnamespace);
	EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA %s TO mlcnn_sec_plain, mlcnn_sec_reader',
	               pg_my_temp_schema()::regnamespace);
END
$$;

-- a small model and row, built by the superuser; the roles read them
CREATE TEMP TABLE sec_rows AS
SELECT i, i % 10 AS label,
	(SELECT decode(string_agg(lpad(to_hex((11 * i + 5 * j) % 256), 2, '0'), '' ORDER BY j), 'hex')
	   FROM generate_series(0, 63) j) AS px
FROM generate_series(0, 39) i;
CREATE TEMP TABLE sec_model AS
SELECT train_conv2d(px, label,
	'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8, "record_times": false}') AS blob
FROM sec_rows;
CREATE TEMP TABLE sec_pred AS
SELECT string_agg(predict(m.blob, r.px)::text, ',' ORDER BY r.i) AS preds FROM sec_model m, sec_rows r;
GRANT SELECT ON sec_rows, sec_model, sec_pred TO mlcnn_sec_plain, mlcnn_sec_reader;

SET LOCAL ROLE mlcnn_sec_plain;
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte', 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'42501', 'permission denied to read IDX files on the server',
	'load_idx is refused to a role without pg_read_server_files');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('/etc/passwd', '/etc/shadow')$$,
	'42501', 'permission denied to read IDX files on the server',
	'load_idx refuses before it opens anything (absolute paths, files it could not read anyway)');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/../../../../etc/passwd', 'x')$$,
	'42501', 'permission denied to read IDX files on the server',
	'load_idx refuses paths that climb out of the data directory too');
SELECT throws_ok(
	$$SELECT count(*) FROM load_images('/etc')$$,
	'42501', 'permission denied to read image files on the server',
	'load_images is refused to a role without pg_read_server_files, before it lists anything');
SELECT is(
	(SELECT string_agg(predict(m.blob, r.px)::text, ',' ORDER BY r.i) FROM sec_model m, sec_rows r),
	(SELECT preds FROM sec_pred),
	'an ordinary role predicts, with the same results as the superuser');
SELECT is(
	(SELECT md5(train_conv2d(px, label,
		'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8, "record_times": false}'))
	 FROM sec_rows),
	(SELECT md5(blob) FROM sec_model),
	'an ordinary role trains, and gets the same model bytes');
SELECT lives_ok($$SELECT evaluate(m.blob, r.px, r.label), compute_gradients(m.blob, r.px, r.label)
                  FROM sec_model m, sec_rows r$$,
	'an ordinary role runs evaluate and compute_gradients');
SELECT throws_ok($$SET mlcnn.max_train_memory = '512MB'$$, '42501',
	'permission denied to set parameter "mlcnn.max_train_memory"',
	'mlcnn.max_train_memory is an administrator''s safeguard: an ordinary role may not change it');
RESET ROLE;

SET LOCAL ROLE mlcnn_sec_reader;
SELECT is(
	(SELECT count(*)::int FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte', 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')),
	12, 'a member of pg_read_server_files may call load_idx');
RESET ROLE;

-- ------------------------------------------------------------ hostile search_path
-- A schema of traps: types and functions named like pg_catalog's and like
-- the extension's support functions, and an operator, each of which raises
-- if anything ever binds to it.
CREATE SCHEMA mlcnn_evil;
CREATE FUNCTION mlcnn_evil.trap() RETURNS text LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'a hostile object was used'; END$$;
CREATE DOMAIN mlcnn_evil.bytea AS pg_catalog.text CHECK (mlcnn_evil.trap() IS NULL);
CREATE DOMAIN mlcnn_evil.jsonb AS pg_catalog.text CHECK (mlcnn_evil.trap() IS NULL);
CREATE DOMAIN mlcnn_evil.real AS pg_catalog.text CHECK (mlcnn_evil.trap() IS NULL);
CREATE FUNCTION mlcnn_evil.length(pg_catalog.bytea) RETURNS integer LANGUAGE plpgsql AS
$$BEGIN PERFORM mlcnn_evil.trap(); RETURN 0; END$$;
CREATE FUNCTION mlcnn_evil.md5(pg_catalog.bytea) RETURNS pg_catalog.text LANGUAGE plpgsql AS
$$BEGIN PERFORM mlcnn_evil.trap(); RETURN NULL; END$$;
CREATE FUNCTION mlcnn_evil.jsonb_build_object(VARIADIC pg_catalog.text[]) RETURNS pg_catalog.jsonb LANGUAGE plpgsql AS
$$BEGIN PERFORM mlcnn_evil.trap(); RETURN NULL; END$$;
CREATE FUNCTION mlcnn_evil.mlcnn_train_finalfn(pg_catalog.text) RETURNS pg_catalog.bytea LANGUAGE plpgsql AS
$$BEGIN PERFORM mlcnn_evil.trap(); RETURN NULL; END$$;
CREATE FUNCTION mlcnn_evil.bytea_eq(pg_catalog.bytea, pg_catalog.bytea) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM mlcnn_evil.trap(); RETURN false; END$$;
CREATE OPERATOR mlcnn_evil.= (LEFTARG = pg_catalog.bytea, RIGHTARG = pg_catalog.bytea, FUNCTION = mlcnn_evil.bytea_eq);

-- an odd schema name, quoted by @extschema@ substitution
CREATE SCHEMA "Mlcnn Fresh-1";
DROP EXTENSION mlcnn;

-- not trusted: an ordinary role with CREATE on the schema cannot install it
GRANT CREATE ON SCHEMA "Mlcnn Fresh-1" TO mlcnn_sec_plain;
SET LOCAL ROLE mlcnn_sec_plain;
SELECT throws_ok($$CREATE EXTENSION mlcnn SCHEMA "Mlcnn Fresh-1"$$, '42501',
	'permission denied to create extension "mlcnn"', 'an ordinary role cannot create the extension (not trusted)');
RESET ROLE;

SET LOCAL search_path = mlcnn_evil, pg_catalog, public;
SELECT lives_ok($$CREATE EXTENSION mlcnn SCHEMA "Mlcnn Fresh-1"$$,
	'CREATE EXTENSION into a fresh, oddly named schema works under a hostile search_path');
-- so does the way there from 0.1.0; what follows checks the updated install
SELECT lives_ok($$DROP EXTENSION mlcnn; CREATE EXTENSION mlcnn SCHEMA "Mlcnn Fresh-1" VERSION '0.1.0';
                  ALTER EXTENSION mlcnn UPDATE$$,
	'CREATE EXTENSION ... VERSION ''0.1.0'' and ALTER EXTENSION mlcnn UPDATE work under the hostile search_path');
SET LOCAL search_path = public, pg_catalog;

SELECT is((SELECT count(*)::int FROM sec_fn WHERE pronamespace <> '"Mlcnn Fresh-1"'::regnamespace), 0,
	'every function of the extension is in the new schema');
SELECT is((SELECT count(*)::int FROM sec_fn), 62, 'all 62 functions and aggregates are there');
SELECT is(
	(SELECT string_agg(DISTINCT f.name || ': ' || t.oid::regtype::text, ', ')
	 FROM sec_fn f
	 JOIN pg_proc p ON p.oid = f.oid
	 CROSS JOIN LATERAL unnest(p.proargtypes::oid[] || p.prorettype || coalesce(p.proallargtypes, '{}')) a(typ)
	 JOIN pg_type t ON t.oid = a.typ
	 WHERE t.typnamespace <> 'pg_catalog'::regnamespace),
	NULL, 'every argument and result type is pg_catalog''s, none of the hostile domains');
SELECT is(
	(SELECT string_agg(a.aggfnoid::regprocedure::text || ' -> ' || s.fn::regprocedure::text, ', ')
	 FROM pg_aggregate a
	 JOIN sec_fn f ON f.oid = a.aggfnoid
	 CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn]::oid[]) s(fn)
	 WHERE s.fn <> 0 AND s.fn NOT IN (SELECT oid FROM sec_fn)),
	NULL, 'every aggregate support function is the extension''s own');
SELECT is(
	(SELECT count(*)::int FROM pg_aggregate a JOIN sec_fn f ON f.oid = a.aggfnoid), 19,
	'the nineteen aggregates (eight of bytea pixels, eight of real[], average_models and the two combines) are there');
SELECT is(
	(SELECT string_agg(d.refobjid::regprocedure::text, ', ')
	 FROM pg_depend d
	 JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
	 WHERE w.ev_class = '"Mlcnn Fresh-1".mlcnn_stats'::regclass AND d.refclassid = 'pg_proc'::regclass
	   AND d.refobjid NOT IN (SELECT oid FROM sec_fn)),
	NULL, 'the mlcnn_stats view calls only the extension''s function');
SELECT is(
	(SELECT count(*)::int FROM pg_class c
	 JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mlcnn'
	 WHERE c.relnamespace <> '"Mlcnn Fresh-1"'::regnamespace),
	0, 'every relation of the extension is in the new schema');

-- the reinstalled functions work with the hostile path in force, and agree
SET LOCAL search_path = mlcnn_evil, pg_catalog, public;
SELECT is(
	(SELECT pg_catalog.string_agg("Mlcnn Fresh-1".predict(m.blob, r.px)::text, ',' ORDER BY r.i)
	 FROM pg_temp.sec_model m, pg_temp.sec_rows r),
	(SELECT preds FROM pg_temp.sec_pred),
	'with the hostile search_path in force, the new predict() gives the same predictions');
SELECT is(
	(SELECT pg_catalog.md5("Mlcnn Fresh-1".train_conv2d(px, label,
		'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 8, "record_times": false}'::pg_catalog.jsonb))
	 FROM pg_temp.sec_rows),
	(SELECT pg_catalog.md5(blob) FROM pg_temp.sec_model),
	'and the new train_conv2d() the same model bytes');
SELECT lives_ok($$SELECT * FROM "Mlcnn Fresh-1".mlcnn_stats$$, 'the mlcnn_stats view reads under the hostile path');
SELECT lives_ok($$SELECT "Mlcnn Fresh-1".model_info(blob) FROM pg_temp.sec_model$$,
	'model_info and its jsonb work under the hostile path');
SET LOCAL search_path = public, pg_catalog;

-- installed into the hostile schema itself: pg_catalog is searched first while
-- the script runs, so the trap domains named bytea, jsonb and real lose
DROP EXTENSION mlcnn;
SET LOCAL search_path = mlcnn_evil, public;
SELECT lives_ok($$CREATE EXTENSION mlcnn$$, 'CREATE EXTENSION into the schema of traps (first on the search_path) works');
SET LOCAL search_path = public, pg_catalog;
SELECT is((SELECT count(*)::int FROM sec_fn WHERE pronamespace = 'mlcnn_evil'::regnamespace), 62,
	'all 62 functions went into that schema');
SELECT is(
	(SELECT string_agg(DISTINCT f.name || ': ' || t.oid::regtype::text, ', ')
	 FROM sec_fn f
	 JOIN pg_proc p ON p.oid = f.oid
	 CROSS JOIN LATERAL unnest(p.proargtypes::oid[] || p.prorettype || coalesce(p.proallargtypes, '{}')) a(typ)
	 JOIN pg_type t ON t.oid = a.typ
	 WHERE t.typnamespace <> 'pg_catalog'::regnamespace),
	NULL, 'still every argument and result type is pg_catalog''s, none of the trap domains beside them');
SELECT is(
	(SELECT string_agg(a.aggfnoid::regprocedure::text || ' -> ' || s.fn::regprocedure::text, ', ')
	 FROM pg_aggregate a
	 JOIN sec_fn f ON f.oid = a.aggfnoid
	 CROSS JOIN LATERAL unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn]::oid[]) s(fn)
	 WHERE s.fn <> 0 AND s.fn NOT IN (SELECT oid FROM sec_fn)),
	NULL, 'and every aggregate support function is the extension''s, not the trap mlcnn_train_finalfn(text)');
SELECT is((SELECT count(*)::int FROM pg_proc WHERE proname = 'predict' AND pronamespace = 'public'::regnamespace), 0,
	'no predict is left in public (the reinstall moved it)');
SELECT is(
	(SELECT string_agg(mlcnn_evil.predict(m.blob, r.px)::text, ',' ORDER BY r.i) FROM sec_model m, sec_rows r),
	(SELECT preds FROM sec_pred), 'predict in the schema of traps gives the same predictions');

SELECT * FROM finish();
ROLLBACK;
