-- Versions: CREATE EXTENSION mlcnn VERSION '0.1.0' followed by ALTER
-- EXTENSION mlcnn UPDATE must leave exactly the objects of a fresh CREATE
-- EXTENSION mlcnn: every member (pg_depend), every function's definition
-- and labels (pg_proc), every aggregate (pg_aggregate), every view's query
-- and every comment (pg_description). The test starts from the fresh install
-- pg_regress made and ends with a fresh install again.
\set SHOW_CONTEXT never
SELECT extversion FROM pg_extension WHERE extname = 'mlcnn';
SELECT name, version, installed FROM pg_available_extension_versions WHERE name = 'mlcnn' ORDER BY version;
SELECT source, target, path FROM pg_extension_update_paths('mlcnn') WHERE path IS NOT NULL ORDER BY 1, 2;
-- the objects of the installed version, one row each, described by name
CREATE FUNCTION pg_temp.mlcnn_objects()
RETURNS TABLE (kind text, object text, definition text, description text) LANGUAGE sql AS $$
	SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid), NULL,
	       obj_description(d.objid, d.classid::regclass::name)
	FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mlcnn'
	WHERE d.deptype = 'e'
	UNION ALL
	SELECT 'function', p.oid::regprocedure::text,
	       concat_ws(' | ', p.prokind, p.prorettype::regtype, p.proretset, p.provolatile, p.proparallel,
	                 p.proisstrict, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.prosrc, p.probin,
	                 array_to_string(p.proargnames, ','), array_to_string(p.proargmodes, ','),
	                 pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname, p.proconfig),
	       obj_description(p.oid, 'pg_proc')
	FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
	JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mlcnn'
	UNION ALL
	SELECT 'aggregate', a.aggfnoid::regprocedure::text,
	       concat_ws(' | ', a.aggkind, a.aggtransfn::regprocedure, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
	                 a.aggdeserialfn, a.aggtranstype::regtype, a.aggtransspace, a.agginitval, a.aggfinalmodify),
	       NULL
	FROM pg_aggregate a
	JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = a.aggfnoid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mlcnn'
	UNION ALL
	SELECT 'view', c.oid::regclass::text, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class')
	FROM pg_class c
	JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mlcnn'
	WHERE c.relkind = 'v'
$$;
CREATE TEMP TABLE fresh AS SELECT * FROM pg_temp.mlcnn_objects();
SELECT kind, count(*) FROM fresh GROUP BY kind ORDER BY kind;
SELECT count(*) AS comments FROM fresh WHERE kind = 'member' AND description IS NOT NULL;
-- ------------------------------------------------------------- 0.1.0
DROP EXTENSION mlcnn;
CREATE EXTENSION mlcnn VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'mlcnn';
CREATE TEMP TABLE old AS SELECT * FROM pg_temp.mlcnn_objects();
-- 0.1.0 has the same objects but the five functions of 0.3.0 and the real[] forms, tune_conv2d, average_models, train_distributed and the partial aggregates of 0.4.0,
-- and its compute_gradients and evaluate had internal states (0.4.0 replaced them); three comments differ
SELECT (SELECT count(*) FROM (SELECT kind, object, definition FROM old
                              EXCEPT SELECT kind, object, definition FROM fresh) x) AS only_in_0_1_0,
       (SELECT count(*) FROM (SELECT kind, object, definition FROM fresh
                              EXCEPT SELECT kind, object, definition FROM old) x) AS only_in_fresh;
SELECT kind, object FROM fresh EXCEPT SELECT kind, object FROM old ORDER BY 1, 2;
SELECT f.kind, f.object FROM fresh f JOIN old o USING (kind, object)
WHERE f.description IS DISTINCT FROM o.description ORDER BY 1, 2;
-- a model trained while 0.1.0's objects are installed (the library is the new one) serves after the update
CREATE TEMP TABLE rows AS
  SELECT i, i % 3 AS label,
         (SELECT decode(string_agg(lpad(to_hex((13 * i + 7 * j) % 256), 2, '0'), '' ORDER BY j), 'hex')
          FROM generate_series(0, 35) j) AS px
  FROM generate_series(0, 29) i;
CREATE TEMP TABLE trained AS
  SELECT train_conv2d(px, label, '{"layers": "dense(3)", "classes": 3, "epochs": 1, "batch_size": 10,
                                   "record_times": false}') AS model
  FROM rows;
-- ------------------------------------------------------------- ALTER EXTENSION mlcnn UPDATE
ALTER EXTENSION mlcnn UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'mlcnn';
CREATE TEMP TABLE updated AS SELECT * FROM pg_temp.mlcnn_objects();
-- the updated objects are the fresh install's, to the last comment
SELECT * FROM (SELECT 'only after the update' AS side, * FROM (SELECT * FROM updated EXCEPT SELECT * FROM fresh) a
               UNION ALL
               SELECT 'only in a fresh install', * FROM (SELECT * FROM fresh EXCEPT SELECT * FROM updated) b) d
ORDER BY 1, 2, 3;
SELECT (SELECT count(*) FROM updated) = (SELECT count(*) FROM fresh) AS same_count;
SELECT count(*) AS predictions, bool_and(predict(t.model, r.px) BETWEEN 0 AND 2) AS in_range,
       max((model_info(t.model)->>'format_version')::int) AS format_version
FROM trained t, rows r;
-- ------------------------------------------------------------- fresh again
DROP EXTENSION mlcnn;
CREATE EXTENSION mlcnn;
SELECT extversion FROM pg_extension WHERE extname = 'mlcnn';
SELECT count(*) AS differences
FROM (SELECT * FROM pg_temp.mlcnn_objects() EXCEPT SELECT * FROM fresh) x;
-- an update to a version that does not exist names it
ALTER EXTENSION mlcnn UPDATE TO '9.9.9';
\echo :LAST_ERROR_SQLSTATE
