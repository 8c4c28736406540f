-- predict, predict_proba, forward_pass and calculate_loss: how they relate
-- (argmax, softmax, cross-entropy, computed here in SQL), the model cache
-- behind them, and their errors. After each error, the SQLSTATE.
\set SHOW_CONTEXT never

CREATE TEMP TABLE train AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
CREATE TEMP TABLE test AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');
-- two models of different architectures, stored in a table (out of line)
CREATE TEMP TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models
  SELECT 'conv', train_conv2d(pixels, label,
           '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1,
             "learning_rate": 0.01, "record_times": false}') FROM train;
INSERT INTO models
  SELECT 'dense', train_conv2d(pixels, label,
           '{"layers": "flatten dense(32) relu dense(10)", "epochs": 1,
             "learning_rate": 0.01, "record_times": false}') FROM train;
-- both are stored out of line: the cache below sees TOAST pointers
SELECT reltoastrelid::regclass AS toast FROM pg_class WHERE oid = 'models'::regclass \gset
SELECT count(DISTINCT chunk_id) AS toasted_models FROM :toast;
-- every output of every model for every test row
CREATE TEMP TABLE out AS
  SELECT m.name, t.id, t.label,
         predict(m.model, t.pixels) AS predicted,
         predict_proba(m.model, t.pixels) AS proba,
         forward_pass(m.model, t.pixels) AS logits,
         calculate_loss(m.model, t.pixels, t.label) AS loss
  FROM models m, test t;

-- shapes: one class per row, ten values per array
SELECT name, count(*) AS rows,
       bool_and(predicted BETWEEN 0 AND 9) AS class_ok,
       bool_and(array_length(proba, 1) = 10 AND array_length(logits, 1) = 10) AS ten_values
FROM out GROUP BY name ORDER BY name;

-- predict_proba: probabilities that sum to 1
SELECT name,
       bool_and((SELECT bool_and(p >= 0 AND p <= 1) FROM unnest(proba) p)) AS in_0_1,
       max(abs((SELECT sum(p) FROM unnest(proba) p) - 1)) < 1e-5 AS sums_to_1
FROM out GROUP BY name ORDER BY name;

-- predict is the argmax of forward_pass, and of predict_proba (ties are
-- astronomically unlikely in float logits)
SELECT name,
       bool_and(predicted + 1 = (SELECT i FROM unnest(logits) WITH ORDINALITY u(v, i)
                                 ORDER BY v DESC, i LIMIT 1)) AS argmax_logits,
       bool_and(predicted + 1 = (SELECT i FROM unnest(proba) WITH ORDINALITY u(v, i)
                                 ORDER BY v DESC, i LIMIT 1)) AS argmax_proba
FROM out GROUP BY name ORDER BY name;

-- predict_proba is the softmax of forward_pass, computed here in double
-- precision; float32 rounding stays far below 1e-5 per probability
SELECT name, max(err) < 1e-5 AS softmax_ok
FROM (SELECT name, abs(proba[k] - exp(logits[k] - mx) / se) AS err
      FROM (SELECT name, proba, logits,
                   (SELECT max(v) FROM unnest(logits) v) AS mx,
                   (SELECT sum(exp(v - (SELECT max(w) FROM unnest(logits) w))) FROM unnest(logits) v) AS se
            FROM out) o, generate_series(1, 10) k) e
GROUP BY name ORDER BY name;

-- calculate_loss is -ln(predict_proba[label + 1]): within 1e-4 absolute or
-- 1e-3 relative (a float32 probability near 1 has rounding of ~6e-8, and
-- the loss is its logarithm)
SELECT name,
       bool_and(loss >= 0) AS non_negative,
       bool_and(abs(loss + ln(greatest(proba[label + 1], 1e-30))) <= greatest(1e-4, 1e-3 * loss)) AS is_cross_entropy
FROM out GROUP BY name ORDER BY name;

-- a model that learned: most predictions right, and confident mistakes cost
-- more than right answers (on average)
SELECT name, avg((predicted = label)::int) > 0.5 AS mostly_right,
       avg(loss) FILTER (WHERE predicted = label) < avg(loss) FILTER (WHERE predicted <> label) AS loss_ordered
FROM out GROUP BY name ORDER BY name;

-- the model cache: the same answers whether the model is read from the table
-- (a TOAST pointer), passed in memory, or alternates between two models row by row
SELECT count(*) AS differences FROM (
  SELECT name, id, predicted, proba, logits, loss FROM out
  EXCEPT
  SELECT m.name, t.id, predict(m.model, t.pixels), predict_proba(m.model, t.pixels),
         forward_pass(m.model, t.pixels), calculate_loss(m.model, t.pixels, t.label)
  FROM (SELECT name, model || ''::bytea AS model FROM models) m, test t
) d;
SELECT count(*) AS differences FROM (
  SELECT o.name, o.predicted = x.predicted AND o.proba = x.proba AS same
  FROM out o JOIN (SELECT t.id, m.name, predict(m.model, t.pixels) AS predicted,
                          predict_proba(m.model, t.pixels) AS proba
                   FROM test t CROSS JOIN LATERAL
                        (SELECT * FROM models ORDER BY name OFFSET t.id % 2 LIMIT 1) m) x
       USING (id, name)
) d WHERE NOT same;

-- a two-channel input (784 bytes as 14x28x2) and two classes
SELECT array_length(predict_proba(m, pixels), 1) AS classes,
       predict(m, pixels) IN (0, 1) AS class_ok,
       abs((SELECT sum(p) FROM unnest(predict_proba(m, pixels)) p) - 1) < 1e-5 AS sums_to_1
FROM (SELECT train_conv2d(pixels, label, '{"layers": "conv(2,3) flatten dense(2)", "input": [14, 28, 2],
                                           "classes": 2, "epochs": 1}') AS m
      FROM train WHERE label < 2) t, test WHERE test.id = 0;

-- STRICT: NULL in, NULL out
SELECT predict(NULL, pixels) IS NULL AS a, predict_proba(model, NULL::bytea) IS NULL AS b,
       forward_pass(NULL, NULL::real[]) IS NULL AS c, calculate_loss(model, pixels, NULL) IS NULL AS d
FROM models, test WHERE name = 'conv' AND test.id = 0;

-- errors
-- pixels of another length name both lengths
SELECT predict(model, '\x00010203'::bytea) FROM models WHERE name = 'conv';
\echo :LAST_ERROR_SQLSTATE
SELECT predict_proba(model, substr(pixels, 2)) FROM models, test WHERE name = 'conv' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT forward_pass(model, pixels || pixels) FROM models, test WHERE name = 'conv' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT calculate_loss(model, '\x'::bytea, 0) FROM models WHERE name = 'conv';
\echo :LAST_ERROR_SQLSTATE
-- a label outside the model's classes
SELECT calculate_loss(model, pixels, 10) FROM models, test WHERE name = 'conv' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT calculate_loss(model, pixels, -1) FROM models, test WHERE name = 'conv' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
-- gradients where a model belongs
SELECT predict(g, pixels)
FROM (SELECT compute_gradients(model, pixels, label) AS g FROM models, test WHERE name = 'conv') x,
     test WHERE test.id = 0;
\echo :LAST_ERROR_SQLSTATE
-- bytes that are no model: too short, another magic, a flipped bit (checksum)
SELECT predict('\x0102'::bytea, pixels) FROM test WHERE id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT predict(decode(repeat('00', 64), 'hex'), pixels) FROM test WHERE id = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT predict(set_byte(model, 200, get_byte(model, 200) # 1), pixels)
FROM models, test WHERE name = 'conv' AND test.id = 0;
\echo :LAST_ERROR_SQLSTATE
-- (the message of a cut-short model names its size: only the SQLSTATE here)
\set VERBOSITY sqlstate
SELECT predict(substr(model, 1, length(model) - 1), pixels)
FROM models, test WHERE name = 'conv' AND test.id = 0;
\set VERBOSITY default
-- after errors, the same backend still predicts
SELECT count(*) AS rows FROM out o JOIN test t USING (id) JOIN models m USING (name)
WHERE predict(m.model, t.pixels) = o.predicted;

-- the declared labels
SELECT p.oid::regprocedure, provolatile, proparallel, proisstrict, prorettype::regtype
FROM pg_proc p
WHERE p.oid IN ('predict(bytea, bytea)'::regprocedure, 'predict_proba(bytea, bytea)'::regprocedure,
                'forward_pass(bytea, bytea)'::regprocedure,
                'calculate_loss(bytea, bytea, integer)'::regprocedure)
ORDER BY p.oid::regprocedure::text;
