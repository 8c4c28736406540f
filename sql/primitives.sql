-- The primitives: model_info, model_weights, compute_gradients,
-- update_weights and evaluate. Each is checked against something computed
-- here independently: the parameter count from the layer shapes, a forward
-- pass written in SQL from model_weights (PyTorch layout), the gradient
-- against a finite difference of calculate_loss, evaluate against predict.
-- After each error, the SQLSTATE.
\set SHOW_CONTEXT never
\set small '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1, "learning_rate": 0.01, "record_times": false}'

CREATE TEMP TABLE train AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
CREATE TEMP TABLE test AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');
CREATE TEMP TABLE models (name text PRIMARY KEY, model bytea);
INSERT INTO models SELECT 'small', train_conv2d(pixels, label, :'small') FROM train;
-- with wall-clock times, a hold-out and z-score normalisation
INSERT INTO models SELECT 'timed', train_conv2d(pixels, label,
  '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 2,
    "validation_fraction": 0.1, "normalize": "zscore"}') FROM train;

-- ------------------------------------------------------------------ model_info
-- every field
SELECT name, array(SELECT jsonb_object_keys(model_info(model)) ORDER BY 1) AS fields
FROM models ORDER BY name;
SELECT model_info(model) - 'options' - 'history' - 'size_bytes' AS info,
       (model_info(model)->'size_bytes')::int = length(model) AS size_is_length,
       model_info(model)->'options' = model_info(model)->'options' || :'small'::jsonb AS options_as_given
FROM models WHERE name = 'small';
-- the parameter count from the shapes: conv(4,3) on one channel has
-- 4*1*3*3 + 4 = 40; its 26x26x4 output pools to 13x13x4 = 676 values, so
-- dense(10) has 676*10 + 10 = 6770; 6810 in all
SELECT (model_info(model)->'parameters')::int = 40 + 6770 AS parameters_ok FROM models WHERE name = 'small';
-- history: one entry per epoch with loss, accuracies and seconds
SELECT name, e->'epoch' AS epoch,
       (e->>'loss')::float8 > 0 AS loss_ok,
       (e->>'train_accuracy')::float8 BETWEEN 0 AND 1 AS train_acc_ok,
       CASE WHEN e->'validation_accuracy' = 'null' THEN 'null'
            ELSE ((e->>'validation_accuracy')::float8 BETWEEN 0 AND 1)::text END AS val_acc,
       CASE WHEN e->'seconds' = 'null' THEN 'null' ELSE ((e->>'seconds')::float8 > 0)::text END AS seconds
FROM models, jsonb_array_elements(model_info(model)->'history') e ORDER BY name, 2;
-- the total time covers the epochs; zscore keeps its mean and deviation
SELECT (model_info(model)->>'training_seconds')::float8 >=
         (SELECT sum((e->>'seconds')::float8) FROM jsonb_array_elements(model_info(model)->'history') e) * 0.999
         AS total_covers_epochs,
       model_info(model)->'normalize'->>'mode' AS mode,
       (model_info(model)->'normalize'->>'mean')::float8 BETWEEN 0 AND 1 AS mean_ok,
       (model_info(model)->'normalize'->>'std')::float8 BETWEEN 0 AND 1 AS std_ok
FROM models WHERE name = 'timed';
-- not a model
SELECT model_info('\x00'::bytea);
\echo :LAST_ERROR_SQLSTATE

-- --------------------------------------------------------------- model_weights
-- names and shapes as a torch.nn.Sequential of the same layers has them:
-- conv weight [out, in, kh, kw], dense weight [out, in], bias [out]
SELECT w.layer, w.name, w.shape, array_length(w.weights, 1) AS n
FROM models, model_weights(model) w WHERE models.name = 'small';
SELECT w.name, w.shape, array_length(w.weights, 1) AS n
FROM model_weights((SELECT train_conv2d(pixels, label,
       '{"layers": "conv(3,5) relu maxpool(2) conv(6,3) relu maxpool(2) flatten dense(16) relu dropout(0.5) dense(10)",
         "epochs": 1}') FROM train WHERE id < 64)) w;
-- the total is the parameter count, and each array holds the product of its shape
SELECT sum(array_length(weights, 1)) = (model_info(model)->>'parameters')::int AS total_ok,
       bool_and(array_length(weights, 1) =
                (SELECT round(exp(sum(ln(d))))::int FROM unnest(shape) d)) AS shapes_ok
FROM models, model_weights(model) WHERE models.name = 'small' GROUP BY model;

-- the layout, proved by a forward pass written here in SQL from the weights:
-- a net on 5x5 images with 2 channels (HWC bytes), conv(2,3) relu flatten
-- dense(3); flatten is PyTorch's (channel, row, column) order
CREATE TEMP TABLE tiny_rows AS
  SELECT i AS id, i % 3 AS label,
         decode(string_agg(lpad(to_hex((i * 37 + j * 101 + i * j) % 256), 2, '0'), '' ORDER BY j), 'hex') AS pixels
  FROM generate_series(0, 47) i, generate_series(0, 49) j GROUP BY i;
CREATE TEMP TABLE tiny AS
  SELECT train_conv2d(pixels, label, '{"layers": "conv(2,3) relu flatten dense(3)", "input": [5, 5, 2],
                                       "classes": 3, "epochs": 1, "batch_size": 16}') AS model
  FROM tiny_rows;
SELECT name, shape FROM tiny, model_weights(model);
CREATE TEMP TABLE tiny_w AS
  SELECT w.name, u.v, u.i::int AS i FROM tiny, model_weights(model) w, unnest(w.weights) WITH ORDINALITY u(v, i);
WITH x AS (              -- inputs scaled by minmax: x[r, c, y, xx] = byte / 255
  SELECT r.id, c, y, xx, get_byte(r.pixels, (y * 5 + xx) * 2 + c) / 255.0 AS v
  FROM tiny_rows r, generate_series(0, 1) c, generate_series(0, 4) y, generate_series(0, 4) xx
), conv AS (             -- out[o, y, x] = b[o] + sum W[o, c, ky, kx] * x[c, y+ky, x+kx], then relu
  SELECT x.id, o, oy, ox,
         greatest(0, sum(w.v * x.v) + (SELECT v FROM tiny_w WHERE name = '0.bias' AND i = o + 1)) AS h
  FROM generate_series(0, 1) o, generate_series(0, 2) oy, generate_series(0, 2) ox,
       generate_series(0, 1) ic, generate_series(0, 2) ky, generate_series(0, 2) kx,
       tiny_w w, x
  WHERE w.name = '0.weight' AND w.i = o * 18 + ic * 9 + ky * 3 + kx + 1
    AND x.c = ic AND x.y = oy + ky AND x.xx = ox + kx
  GROUP BY x.id, o, oy, ox
), logits AS (           -- logit[k] = b[k] + sum W[k, j] * h[j], j = o*9 + y*3 + x
  SELECT conv.id, k, sum(w.v * conv.h) + (SELECT v FROM tiny_w WHERE name = '3.bias' AND i = k + 1) AS v
  FROM conv, generate_series(0, 2) k, tiny_w w
  WHERE w.name = '3.weight' AND w.i = k * 18 + o * 9 + oy * 3 + ox + 1
  GROUP BY conv.id, k
)
SELECT count(*) AS logits, max(abs(l.v - (forward_pass(t.model, r.pixels))[l.k + 1])) < 1e-5 AS layout_ok
FROM logits l JOIN tiny_rows r USING (id), tiny t;

-- ------------------------------------------------------------ compute_gradients
CREATE TEMP TABLE batch AS SELECT * FROM train WHERE id < 256;
CREATE TEMP TABLE grads AS
  SELECT compute_gradients(model, pixels, label) AS g FROM models, batch WHERE name = 'small';
-- a gradient blob of the model's shapes, averaged over the 256 rows
SELECT model_info(g)->'kind' AS kind, model_info(g)->'gradient_rows' AS gradient_rows,
       model_info(g)->'rows_skipped' AS rows_skipped,
       model_info(g)->'layers' = model_info((SELECT model FROM models WHERE name = 'small'))->'layers' AS same_layers
FROM grads;
SELECT bool_and(a.shape = b.shape) AS same_shapes, count(*) AS tensors
FROM grads, model_weights(g) a JOIN model_weights((SELECT model FROM models WHERE name = 'small')) b USING (name);
-- the gradient is the slope of the mean loss: stepping against it by eps
-- lowers the mean calculate_loss by eps * |g|^2 to first order (the
-- second-order term is ~0.1% at eps = 1e-3; allow 2%)
CREATE TEMP TABLE stepped AS
  SELECT update_weights(model, g, 1e-3) AS model FROM models, grads WHERE name = 'small';
SELECT abs(slope / g2 - 1) < 0.02 AS gradient_matches_finite_difference, g2 > 0 AS nonzero
FROM (SELECT ((SELECT avg(calculate_loss(model, pixels, label)) FROM models, batch WHERE name = 'small') -
              (SELECT avg(calculate_loss(model, pixels, label)) FROM stepped, batch)) / 1e-3 AS slope,
             (SELECT sum(v::float8 * v) FROM grads, model_weights(g) w, unnest(w.weights) v) AS g2) s;
-- NULL rows are skipped and counted; a NULL model counts as a skipped row
SELECT model_info(compute_gradients(model, CASE WHEN id % 10 = 0 THEN NULL ELSE pixels END,
                                    CASE WHEN id % 10 = 1 THEN NULL ELSE label END)) - 'history'
         - 'options' - 'size_bytes' - 'layers' - 'parameters' AS info
FROM models, batch WHERE name = 'small';
-- no rows, or only NULL models: NULL
SELECT compute_gradients(model, pixels, label) IS NULL AS no_rows FROM models, batch WHERE false;
SELECT compute_gradients(NULL, pixels, label) IS NULL AS null_models FROM batch;
-- errors: bad rows, a gradient blob as the model, two models in one call
SELECT compute_gradients(model, pixels, 10) FROM models, batch WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT compute_gradients(model, substr(pixels, 1, 10), label) FROM models, batch WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT compute_gradients(g, pixels, label) FROM grads, batch;
\echo :LAST_ERROR_SQLSTATE
SELECT compute_gradients(model, pixels, label) FROM models, batch;
\echo :LAST_ERROR_SQLSTATE

-- -------------------------------------------------------------- update_weights
-- w - lr * g, element by element (float32 rounding: 1e-6 relative)
SELECT bool_and(abs(n - (o - 0.5 * gr)) <= 1e-6 * greatest(1, abs(o))) AS sgd_step,
       bool_or(n <> o) AS changed
FROM models, grads,
     model_weights(update_weights(model, g, 0.5)) nw
     JOIN model_weights(model) ow USING (name) JOIN model_weights(g) gw USING (name),
     unnest(nw.weights, ow.weights, gw.weights) u(n, o, gr)
WHERE models.name = 'small';
-- a zero learning rate changes nothing; the result is a model like the input
SELECT update_weights(model, g, 0) = model AS lr_0_identity,
       model_info(update_weights(model, g, 0.1)) - 'size_bytes' = model_info(model) - 'size_bytes' AS same_info
FROM models, grads WHERE name = 'small';
-- errors: gradients of another architecture, a model and gradients swapped,
-- a learning rate that is NaN, infinite or negative
SELECT update_weights(model, (SELECT compute_gradients(model, pixels, label) FROM tiny, tiny_rows), 0.1)
FROM models WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT update_weights(g, g, 0.1) FROM grads;
\echo :LAST_ERROR_SQLSTATE
SELECT update_weights(model, model, 0.1) FROM models WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT update_weights(model, g, 'NaN') FROM models, grads WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT update_weights(model, g, 'Infinity') FROM models, grads WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT update_weights(model, g, -0.1) FROM models, grads WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT update_weights(model, '\x00'::bytea, 0.1) FROM models WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE

-- -------------------------------------------------------------------- evaluate
CREATE TEMP TABLE ev AS
  SELECT evaluate(model, pixels, label) AS e FROM models, test WHERE name = 'small';
CREATE TEMP TABLE pred AS
  SELECT t.label, predict(m.model, t.pixels) AS p, calculate_loss(m.model, t.pixels, t.label) AS loss
  FROM models m, test t WHERE m.name = 'small';
SELECT array(SELECT jsonb_object_keys(e) ORDER BY 1) AS fields FROM ev;
-- rows, correct and accuracy agree with predict; the loss with calculate_loss
SELECT (e->'rows')::int = (SELECT count(*) FROM pred) AS rows_ok,
       (e->'correct')::int = (SELECT count(*) FROM pred WHERE p = label) AS correct_ok,
       abs((e->>'accuracy')::float8 - (SELECT avg((p = label)::int) FROM pred)) < 1e-6 AS accuracy_ok,
       abs((e->>'loss')::float8 - (SELECT avg(loss) FROM pred)) < 1e-5 AS loss_ok,
       (e->'skipped')::int AS skipped
FROM ev;
-- the confusion matrix [true][predicted] is the count of (label, predict)
-- pairs, so it sums to the rows; precision and recall follow from it
SELECT (SELECT sum(c::int) FROM jsonb_array_elements(e->'confusion_matrix') r,
                                jsonb_array_elements(r) c) = (e->'rows')::int AS sums_to_rows,
       NOT EXISTS (SELECT FROM generate_series(0, 9) i, generate_series(0, 9) j
                   WHERE (e->'confusion_matrix'->i->>j)::int <>
                         (SELECT count(*) FROM pred WHERE label = i AND p = j)) AS cells_ok,
       NOT EXISTS (SELECT FROM generate_series(0, 9) k
                   WHERE abs((e->'precision'->>k)::float8 -
                             (SELECT avg((label = k)::int) FROM pred WHERE p = k)) > 1e-6
                      OR abs((e->'recall'->>k)::float8 -
                             (SELECT avg((p = k)::int) FROM pred WHERE label = k)) > 1e-6) AS precision_recall_ok
FROM ev;
-- NULLs skipped and counted; a class with no rows has a null recall
SELECT (e->'rows')::int = (SELECT count(*) FROM test WHERE label <> 3) AS rows_ok,
       (e->'skipped')::int = (SELECT count(*) FROM test WHERE label = 3) + 1 AS skipped_ok,
       e->'recall'->3 AS recall_3
FROM (SELECT evaluate(model, CASE WHEN label = 3 THEN NULL ELSE pixels END, label) AS e
      FROM models, (SELECT * FROM test UNION ALL SELECT -1, NULL, NULL) t WHERE name = 'small') x;
SELECT e->'rows' AS rows, e->'accuracy' AS accuracy, e->'loss' AS loss
FROM (SELECT evaluate(model, NULL::bytea, label) AS e FROM models, test WHERE name = 'small') x;
SELECT evaluate(model, pixels, label) IS NULL AS no_rows FROM models, test WHERE false;
-- errors
SELECT evaluate(model, pixels, CASE WHEN id = 250 THEN 12 ELSE label END) FROM models, test WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate(model, pixels || '\x00'::bytea, label) FROM models, test WHERE name = 'small';
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate(g, pixels, label) FROM grads, test;
\echo :LAST_ERROR_SQLSTATE
SELECT evaluate(model, pixels, label) FROM models, test;
\echo :LAST_ERROR_SQLSTATE
-- one evaluation per model with GROUP BY
SELECT name, (evaluate(model, pixels, label)->'rows')::int AS rows
FROM models, test GROUP BY name ORDER BY name;

-- the declared labels
SELECT p.oid::regprocedure, provolatile, proparallel, proisstrict
FROM pg_proc p
WHERE proname IN ('update_weights', 'model_info', 'model_weights')
   OR proname LIKE 'mlcnn\_gradients\_%' OR proname LIKE 'mlcnn\_evaluate\_%'
ORDER BY p.oid::regprocedure::text;
