-- Format-1 models. test/fixtures/model_v1.bin was written by the core of
-- mlcnn 0.1.0 (test/fixtures/make_model_v1.sh), which also recorded what it
-- answered for eight probe images (model_v1_logits.txt) and its
-- model_info (model_v1_info.json). Today's mlcnn must load it, predict the
-- recorded classes with the recorded logits, show the same model_info, and
-- re-export it as format 2 (update_weights with a zero step) with the same
-- predictions, logits and information. Outputs are properties, never
-- numbers copied from a run.
\set SHOW_CONTEXT never
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixture :abs_srcdir '/test/fixtures/model_v1.bin'
\set logits :abs_srcdir '/test/fixtures/model_v1_logits.txt'
\set info :abs_srcdir '/test/fixtures/model_v1_info.json'
CREATE TEMP TABLE v1 AS SELECT pg_read_binary_file(:'fixture') AS model;
CREATE TEMP TABLE recorded AS
  SELECT f[1]::int AS i, f[2]::int AS class, f[3:6]::real[] AS logits
  FROM regexp_split_to_table(rtrim(pg_read_file(:'logits'), E'\n'), E'\n') l,
       regexp_split_to_array(l, ' ') f;
CREATE TEMP TABLE recorded_info AS SELECT pg_read_file(:'info')::jsonb AS info;
-- pixel k of probe image i is (29 i + 7 k + (k / 8) (i + 3)) mod 256, as make_model_v1.c made them
CREATE TEMP TABLE probes AS
  SELECT i, (SELECT decode(string_agg(lpad(to_hex((29 * i + 7 * k + (k / 8) * (i + 3)) % 256), 2, '0'), '' ORDER BY k), 'hex')
             FROM generate_series(0, 63) k) AS px
  FROM generate_series(0, 7) i;
SELECT length(model) AS bytes, get_byte(model, 8) AS format, md5(model) AS md5 FROM v1;
-- ------------------------------------------------------------- as recorded
SELECT p.i, predict(v1.model, p.px) AS class, predict(v1.model, p.px) = r.class AS class_as_recorded,
       (SELECT max(abs(a - b)) FROM unnest(forward_pass(v1.model, p.px), r.logits) u(a, b)) <= 1e-5
         AS logits_as_recorded,
       abs((SELECT sum(x) FROM unnest(predict_proba(v1.model, p.px)) x) - 1) < 1e-5 AS probabilities
FROM v1, probes p JOIN recorded r USING (i) ORDER BY p.i;
-- model_info: what the format-1 code showed, with every float within
-- float32 rounding of the six digits it printed; format_version says 1;
-- options added since (augment_*) show their defaults, and the input type
-- (added in 0.4.0) is bytea
SELECT (model_info(model) - 'history' - 'normalize' - 'options' - 'input_type') = (info - 'history' - 'normalize' - 'options') AS same_info,
       model_info(model)->>'input_type' AS input_type,
       model_info(model)->'format_version' AS format_version,
       (model_info(model)->'options') @> (info->'options') AS same_options,
       (model_info(model)->'options') - (SELECT array_agg(k) FROM jsonb_object_keys(info->'options') k)
         = '{"augment_hflip": false, "augment_shift": 0}' AS new_options_default,
       model_info(model)->'normalize'->>'mode' AS mode,
       abs((model_info(model)->'normalize'->>'mean')::float8 - (info->'normalize'->>'mean')::float8) < 1e-6 AS mean_ok,
       abs((model_info(model)->'normalize'->>'std')::float8 - (info->'normalize'->>'std')::float8) < 1e-6 AS std_ok
FROM v1, recorded_info;
SELECT e.k AS epoch,
       bool_and(abs((e.v->>f)::float8 - (o.v->>f)::float8) <= 1e-6 * greatest(1, abs((o.v->>f)::float8))
                OR (e.v->f = 'null' AND o.v->f = 'null')) AS as_recorded
FROM v1, recorded_info,
     jsonb_array_elements(model_info(model)->'history') WITH ORDINALITY e(v, k)
     JOIN jsonb_array_elements(info->'history') WITH ORDINALITY o(v, k) USING (k),
     unnest(ARRAY['epoch', 'loss', 'train_accuracy', 'validation_accuracy', 'seconds']) f
GROUP BY e.k ORDER BY e.k;
SELECT jsonb_pretty(model_info(model)->'options') AS options FROM v1;
-- the rest of the primitives take it too
SELECT (evaluate(v1.model, p.px, p.i % 4)->'rows')::int AS rows FROM v1, probes p;
SELECT count(*) AS tensors, sum(cardinality(weights)) AS parameters FROM v1, model_weights(v1.model);
-- ------------------------------------------------------------- re-exported as format 2
CREATE TEMP TABLE v2 AS
  SELECT update_weights(v1.model, (SELECT compute_gradients(v1.model, px, i % 4) FROM probes), 0) AS model FROM v1;
SELECT get_byte(v2.model, 8) AS format, model_info(v2.model)->'format_version' AS format_version,
       (model_info(v2.model) - 'format_version' - 'size_bytes') = (model_info(v1.model) - 'format_version' - 'size_bytes')
         AS same_info,
       NOT EXISTS (SELECT FROM model_weights(v1.model) a FULL JOIN model_weights(v2.model) b USING (name)
                   WHERE a.weights IS DISTINCT FROM b.weights) AS same_weights
FROM v1, v2;
SELECT bool_and(predict(v2.model, p.px) = predict(v1.model, p.px)) AS same_classes,
       bool_and(forward_pass(v2.model, p.px) = forward_pass(v1.model, p.px)) AS same_logits,
       bool_and(calculate_loss(v2.model, p.px, p.i % 4) = calculate_loss(v1.model, p.px, p.i % 4)) AS same_loss
FROM v1, v2, probes p;
-- and a format-1 model trains on as an init_model (its architecture, 8x8x1 and 4 classes)
SELECT model_info(m)->'format_version' AS format_version, model_info(m)->'rows_trained' AS rows_trained
FROM (SELECT train_conv2d(p.px, p.i % 4,
        '{"layers": "conv(3,3) relu maxpool(2) dense(4)", "input": [8, 8, 1], "classes": 4,
          "epochs": 1, "batch_size": 4, "normalize": "zscore", "record_times": false}', v1.model) AS m
      FROM v1, probes p) t;
-- a format-1 model whose options text was damaged (resealed) is corrupt where it is read
CREATE FUNCTION pg_temp.crc32(b bytea) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
	c bigint;
	crc bigint := 4294967295;
BEGIN
	FOR i IN 0..length(b) - 1 LOOP
		crc := crc # get_byte(b, i);
		FOR k IN 1..8 LOOP
			c := crc & 1;
			crc := (crc >> 1) # (CASE WHEN c = 1 THEN 3988292384 ELSE 0 END);
		END LOOP;
	END LOOP;
	RETURN crc # 4294967295;
END
$$;
CREATE FUNCTION pg_temp.reseal(b bytea) RETURNS bytea LANGUAGE sql AS $$
	SELECT overlay(b PLACING decode(lpad(to_hex(x & 255), 2, '0') || lpad(to_hex((x >> 8) & 255), 2, '0') ||
	                                lpad(to_hex((x >> 16) & 255), 2, '0') || lpad(to_hex((x >> 24) & 255), 2, '0'), 'hex')
	               FROM length(b) - 3)
	FROM (SELECT pg_temp.crc32(substring(b FROM 1 FOR length(b) - 4)) AS x) s $$;
-- "epochs": 3 becomes "epochs": 0
SELECT model_info(pg_temp.reseal(overlay(model PLACING '0'::bytea FROM position('"epochs": 3'::bytea IN model) + 10)))
FROM v1;
\echo :LAST_ERROR_SQLSTATE
-- a key that was never an option, of the same length
SELECT model_info(pg_temp.reseal(overlay(model PLACING 'epochz'::bytea FROM position('"epochs"'::bytea IN model) + 1)))
FROM v1;
\echo :LAST_ERROR_SQLSTATE
-- its predictions do not read the options: they still work
SELECT predict(pg_temp.reseal(overlay(model PLACING 'epochz'::bytea FROM position('"epochs"'::bytea IN model) + 1)), px)
FROM v1, probes WHERE i = 0;
