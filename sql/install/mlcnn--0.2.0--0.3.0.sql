-- mlcnn 0.2.0 -> 0.3.0: ALTER EXTENSION mlcnn UPDATE.
-- Adds model_to_onnx and model_from_onnx (ONNX export and import) and
-- decode_image (PNG and JPEG to pixels) and load_images (a folder of class folders). Models are unchanged (format 2).
-- Afterwards the objects are those of a fresh CREATE EXTENSION mlcnn (the
-- regression test sql/upgrade.sql compares them).

\echo Use "ALTER EXTENSION mlcnn UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION @extschema@.model_to_onnx(model bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'model_to_onnx'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.model_to_onnx(bytea) IS 'the model as an ONNX file (opset 13): input pixels float [N,C,H,W] of raw values, normalised inside; output logits';

CREATE FUNCTION @extschema@.model_from_onnx(onnx bytea, options jsonb DEFAULT '{}')
RETURNS bytea AS 'MODULE_PATHNAME', 'model_from_onnx'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.model_from_onnx(bytea, jsonb) IS 'an mlcnn model from an ONNX CNN (Conv, BatchNormalization, Relu, pooling, Add, Concat, Flatten, Gemm); options: normalize (with mean and std for zscore), classes, input, and training options for a later init_model';

CREATE FUNCTION @extschema@.decode_image(image bytea, height integer, width integer, channels integer)
RETURNS bytea AS 'MODULE_PATHNAME', 'decode_image'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.decode_image(bytea, integer, integer, integer) IS 'PNG or JPEG bytes as height x width x channels pixels (1 grey, 3 RGB), resized by area averaging or bilinear interpolation';

CREATE FUNCTION @extschema@.load_images(folder text)
RETURNS TABLE(path text, label text, image bytea)
AS 'MODULE_PATHNAME', 'load_images'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION @extschema@.load_images(text) IS 'the PNG and JPEG files of a folder of class folders (as torchvision''s ImageFolder), read on the server, one row per image with its class folder as label';
