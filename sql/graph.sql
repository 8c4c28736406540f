-- Networks as graphs: residual blocks, batch normalisation, average
-- pooling, grouped convolutions and the named form, trained and served
-- from SQL. The data is the synthetic set of the tests (28x28, 10
-- classes); outputs are properties, never numbers copied from a run.
\set SHOW_CONTEXT never
-- the ResNet-style network of the graph issue, one epoch on 500 rows
\set resnet '{"layers": "conv(16,3,1,same) batchnorm relu residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu maxpool(2) conv(32,3,1,same) batchnorm relu residual(conv(32,3,1,same) batchnorm relu conv(32,3,1,same) batchnorm) relu maxpool(2) globalavgpool dense(10)", "epochs": 1, "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant", "record_times": false}'

CREATE TEMP TABLE g_train AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz') WHERE id < 500;
CREATE TEMP TABLE g_test AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz') WHERE id < 200;
CREATE TEMP TABLE g_model AS SELECT train_conv2d(pixels, label, :'resnet') AS m FROM g_train;

-- the canonical spec keeps the blocks; parameters as torch counts them
SELECT model_info(m)->>'layers' AS layers, model_info(m)->'parameters' AS parameters FROM g_model;

-- every tensor named after its module path, batch norm's buffers included,
-- in state_dict order
SELECT layer, name, shape FROM g_model, model_weights(m) WHERE name LIKE '3.%' OR name LIKE '14.%';
SELECT count(*) AS tensors,
       count(*) FILTER (WHERE name LIKE '%running_var') AS running_vars,
       bool_and(name NOT LIKE '%num_batches_tracked' OR weights = '{8}') AS batches_tracked_8
FROM g_model, model_weights(m);
-- the running variance moved from its start of 1
SELECT bool_or(w <> 1) AS running_var_trained
FROM g_model, model_weights(m), unnest(weights) w WHERE name = '1.running_var';

-- it predicts and evaluates with the running statistics: the same class
-- for a row whether it is alone or in a batch of the evaluate aggregate
SELECT (evaluate(m, pixels, label)->>'rows')::int AS rows,
       (evaluate(m, pixels, label)->>'correct')::int =
         (SELECT count(*) FROM g_test t, g_model g WHERE predict(g.m, t.pixels) = t.label) AS predict_agrees
FROM g_test, g_model GROUP BY m;

-- continued training from it, and gradients of it
SELECT model_info(train_conv2d(t.pixels, t.label, :'resnet', g.m))->'rows_trained' AS continued
FROM g_train t, g_model g WHERE t.id < 64 GROUP BY g.m;
SELECT model_info(update_weights(g.m, compute_gradients(g.m, t.pixels, t.label), 0.01))->'parameters' AS updated
FROM g_test t, g_model g GROUP BY g.m;

-- the named form: labels, from(), concat and add; a grouped convolution
SELECT model_info(train_conv2d(pixels, label,
         '{"layers": "a: conv(8,3,1,same) relu b: conv(4,1) from(a) c: conv(8,3,1,same,groups=4) relu concat(b, c) avgpool(2) dense(10)", "epochs": 1, "record_times": false}'))->>'layers' AS named
FROM g_train;

-- errors: an unknown label, a residual block that cannot be matched
SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3) add(a, b) dense(10)"}') FROM g_train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"layers": "residual(conv(4,5)) dense(10)"}') FROM g_train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"layers": "conv(6,3,groups=4) dense(10)"}') FROM g_train;
\echo :LAST_ERROR_SQLSTATE
