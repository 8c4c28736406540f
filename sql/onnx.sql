-- model_to_onnx: a model as an ONNX file. The checker and OpenCV's runtime
-- run in test/onnx/export.py; here: the function's contract from SQL.
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
-- labels
SELECT provolatile, proisstrict, proparallel, obj_description(oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc WHERE proname = 'model_to_onnx';
