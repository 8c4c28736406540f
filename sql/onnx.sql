-- model_to_onnx and model_from_onnx: ONNX export and import. The checker,
-- OpenCV's runtime and PyTorch's files are in test/onnx/export.py; here:
-- the functions' contracts from SQL.
\set SHOW_CONTEXT never
CREATE TEMP TABLE o_rows AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz') WHERE id < 64;
CREATE TEMP TABLE o_model AS
  SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3,1,same) batchnorm relu residual(conv(4,3,1,same) batchnorm relu conv(4,3,1,same) batchnorm) relu maxpool(2) globalavgpool dense(10)", "epochs": 1, "record_times": false}') AS m
  FROM o_rows;

-- a protobuf ModelProto: field 1 (ir_version) = 7 first; opset 13, the
-- input and output names and the metadata keys are in it
SELECT substr(model_to_onnx(m), 1, 2) = '\x0807'::bytea AS ir_version_7,
       position('pixels'::bytea IN model_to_onnx(m)) > 0 AS has_input,
       position('logits'::bytea IN model_to_onnx(m)) > 0 AS has_output,
       position('running_var'::bytea IN model_to_onnx(m)) > 0 AS has_batchnorm_buffers,
       position('mlcnn_version'::bytea IN model_to_onnx(m)) > 0 AS has_metadata,
       length(model_to_onnx(m)) > 4 * (model_info(m)->>'parameters')::int AS holds_every_weight
FROM o_model;
-- the same model gives the same bytes
SELECT model_to_onnx(m) = model_to_onnx(m) AS deterministic FROM o_model;

-- error paths: a gradient blob, garbage, an empty value; NULL gives NULL
SELECT model_to_onnx(g) FROM o_model,
  LATERAL (SELECT compute_gradients(m, pixels, label) AS g FROM o_rows) x;
SELECT model_to_onnx('\x00112233'::bytea);
SELECT model_to_onnx(''::bytea);
SELECT model_to_onnx(NULL) IS NULL AS null_in_null_out;

-- model_from_onnx: the export imports as the same network with the same
-- tensors and predictions; the normalisation comes back from the file
SELECT model_info(i)->'parameters' = model_info(m)->'parameters' AS same_parameters,
       model_info(i)->'normalize' AS normalize,
       (SELECT array_agg(weights::text ORDER BY ord) FROM model_weights(i) WITH ORDINALITY w(l, n, s, weights, ord)
         WHERE n NOT LIKE '%num_batches_tracked')
     = (SELECT array_agg(weights::text ORDER BY ord) FROM model_weights(m) WITH ORDINALITY w(l, n, s, weights, ord)
         WHERE n NOT LIKE '%num_batches_tracked') AS same_tensors,
       (SELECT bool_and(predict(i, pixels) = predict(m, pixels)) FROM o_rows) AS same_predictions
FROM o_model, LATERAL (SELECT model_from_onnx(model_to_onnx(m)) AS i) x;
-- options: the normalisation the file cannot say; classes must agree
SELECT model_info(model_from_onnx(model_to_onnx(m), '{"normalize": "zscore", "mean": 0.5, "std": 0.25}'))->'normalize'
FROM o_model;
SELECT model_from_onnx(model_to_onnx(m), '{"classes": 3}') FROM o_model;
SELECT model_from_onnx(model_to_onnx(m), '{"normalize": "zscore"}') FROM o_model;
SELECT model_from_onnx(model_to_onnx(m), '{"layers": "dense(10)"}') FROM o_model;
SELECT model_from_onnx(model_to_onnx(m), '{"no_such_option": 1}') FROM o_model;
SELECT model_from_onnx(model_to_onnx(m), '[]') FROM o_model;
-- not ONNX; a model blob is not an ONNX file
SELECT model_from_onnx('\x0102030405'::bytea);
SELECT model_from_onnx(m) FROM o_model;
SELECT model_from_onnx(NULL) IS NULL AS null_in_null_out;

-- labels
SELECT proname, provolatile, proisstrict, proparallel, obj_description(oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc WHERE proname IN ('model_to_onnx', 'model_from_onnx') ORDER BY proname;
