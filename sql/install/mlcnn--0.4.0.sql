-- mlcnn 0.4.0: convolutional neural networks trained and served inside PostgreSQL.
-- The full script for a fresh install; mlcnn--0.1.0--0.2.0.sql,
-- mlcnn--0.2.0--0.3.0.sql and mlcnn--0.3.0--0.4.0.sql update older versions.
-- Every object is schema-qualified with @extschema@ or pg_catalog, so the
-- script is safe under any search_path. No function is SECURITY DEFINER.

\echo Use "CREATE EXTENSION mlcnn" to load this file. \quit

-- ======================================================== data loading
-- (section: load_idx)

-- VOLATILE: the result depends on files that can change between calls.
-- PARALLEL SAFE: it only reads a file, touches no database or backend-local
-- state, and a worker runs as the same user in the same data directory, so
-- the privilege check and relative paths behave alike there. (A function
-- scan is never split between workers, so rows are not duplicated.)
-- The privilege check (superuser or pg_read_server_files, like COPY FROM a
-- file) is in C, so EXECUTE stays granted to PUBLIC.
CREATE FUNCTION @extschema@.load_idx(images_path text, labels_path text)
RETURNS TABLE (id integer, label integer, pixels bytea)
AS 'MODULE_PATHNAME', 'load_idx'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE ROWS 10000;

COMMENT ON FUNCTION @extschema@.load_idx(text, text) IS
'rows (id from 0, label, pixels as h*w*c bytes in HWC order) of an IDX images file and its labels file (MNIST format, gzip or raw) on the server; for superusers and members of pg_read_server_files';

-- ======================================================== training
-- (section: train_conv2d)
-- Support functions of the train_conv2d aggregates. The transition function
-- is not STRICT: rows with NULL pixels or label are counted as skipped.
CREATE FUNCTION @extschema@.mlcnn_train_transfn(internal, bytea, integer)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_transfn(internal, bytea, integer, jsonb)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_transfn(internal, bytea, integer, jsonb, bytea)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_combinefn(internal, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_combinefn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_serialfn(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_train_serialfn'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_deserialfn(bytea, internal)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_deserialfn'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- VOLATILE: the model records wall-clock training times (option record_times).
CREATE FUNCTION @extschema@.mlcnn_train_finalfn(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_train_finalfn'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.mlcnn_train_transfn(internal, bytea, integer) IS 'train_conv2d transition: buffers one row';
COMMENT ON FUNCTION @extschema@.mlcnn_train_transfn(internal, bytea, integer, jsonb) IS 'train_conv2d transition: buffers one row';
COMMENT ON FUNCTION @extschema@.mlcnn_train_transfn(internal, bytea, integer, jsonb, bytea) IS 'train_conv2d transition: buffers one row';
COMMENT ON FUNCTION @extschema@.mlcnn_train_combinefn(internal, internal) IS 'train_conv2d combine: merges the rows of two partial states';
COMMENT ON FUNCTION @extschema@.mlcnn_train_serialfn(internal) IS 'train_conv2d serialize: a partial state as bytea';
COMMENT ON FUNCTION @extschema@.mlcnn_train_deserialfn(bytea, internal) IS 'train_conv2d deserialize: a partial state from bytea';
COMMENT ON FUNCTION @extschema@.mlcnn_train_finalfn(internal) IS 'train_conv2d final: trains on the buffered rows and returns the model';

CREATE AGGREGATE @extschema@.train_conv2d(pixels bytea, label integer) (
    SFUNC = @extschema@.mlcnn_train_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_train_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.train_conv2d(pixels bytea, label integer, options jsonb) (
    SFUNC = @extschema@.mlcnn_train_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_train_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.train_conv2d(pixels bytea, label integer, options jsonb, init_model bytea) (
    SFUNC = @extschema@.mlcnn_train_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_train_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.train_conv2d(bytea, integer) IS 'trains a CNN on (pixels, label) rows with the default options; returns the model';
COMMENT ON AGGREGATE @extschema@.train_conv2d(bytea, integer, jsonb) IS 'trains a CNN on (pixels, label) rows with jsonb options (keys and ranges: the option table of the README); returns the model';
COMMENT ON AGGREGATE @extschema@.train_conv2d(bytea, integer, jsonb, bytea) IS 'continues training init_model on (pixels, label) rows; returns the model';

-- ======================================================== inference and primitives
-- (section: predict)
CREATE FUNCTION @extschema@.predict(model bytea, pixels bytea)
RETURNS integer AS 'MODULE_PATHNAME', 'predict'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.predict(bytea, bytea) IS 'the class the model predicts for one image';

CREATE FUNCTION @extschema@.predict_proba(model bytea, pixels bytea)
RETURNS real[] AS 'MODULE_PATHNAME', 'predict_proba'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.predict_proba(bytea, bytea) IS 'softmax probabilities per class for one image';

CREATE FUNCTION @extschema@.forward_pass(model bytea, pixels bytea)
RETURNS real[] AS 'MODULE_PATHNAME', 'forward_pass'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.forward_pass(bytea, bytea) IS 'the output logits (before softmax) for one image';

CREATE FUNCTION @extschema@.calculate_loss(model bytea, pixels bytea, label integer)
RETURNS double precision AS 'MODULE_PATHNAME', 'calculate_loss'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.calculate_loss(bytea, bytea, integer) IS 'the cross-entropy loss of the model on one labelled image';

CREATE FUNCTION @extschema@.update_weights(model bytea, gradients bytea, learning_rate real)
RETURNS bytea AS 'MODULE_PATHNAME', 'update_weights'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.update_weights(bytea, bytea, real) IS 'one plain SGD step: model - learning_rate * gradients, written in model format 2';

CREATE FUNCTION @extschema@.model_info(model bytea)
RETURNS jsonb AS 'MODULE_PATHNAME', 'model_info'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.model_info(bytea) IS 'what a model (or gradient blob) of format 1 or 2 says about itself: format version, layers, shapes, options, history';

CREATE FUNCTION @extschema@.model_weights(model bytea)
RETURNS TABLE(layer integer, name text, shape integer[], weights real[])
AS 'MODULE_PATHNAME', 'model_weights'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 8;
COMMENT ON FUNCTION @extschema@.model_weights(bytea) IS 'every parameter tensor in PyTorch layout and state_dict order';

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

-- compute_gradients and evaluate: aggregates over (model, pixels, label).
-- Their state is a bytea (a partial result: summed gradients, or counts),
-- with a combine function, so that PostgreSQL's parallel workers and Citus's
-- workers each run the forward and backward passes over their own rows and
-- only the partials travel. While a query adds rows the state is an expanded
-- object (the decoded model and a batch of queued rows), flattened only when
-- it leaves the process. The transition functions are not STRICT: rows with
-- NULLs are skipped and counted; the combine functions are not STRICT either
-- (they turn a partial from elsewhere into a state of their own).
CREATE FUNCTION @extschema@.mlcnn_gradients_transfn(bytea, bytea, bytea, integer)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_gradients_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_gradients_transfn(bytea, bytea, real[], integer)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_gradients_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_gradients_combinefn(bytea, bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_gradients_combinefn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_gradients_finalfn(bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_gradients_finalfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_gradients_transfn(bytea, bytea, bytea, integer) IS 'compute_gradients transition: queues one row, runs full batches';
COMMENT ON FUNCTION @extschema@.mlcnn_gradients_transfn(bytea, bytea, real[], integer) IS 'compute_gradients transition: queues one row of real[] pixels, runs full batches';
COMMENT ON FUNCTION @extschema@.mlcnn_gradients_combinefn(bytea, bytea) IS 'compute_gradients combine: adds two partial gradient sums';
COMMENT ON FUNCTION @extschema@.mlcnn_gradients_finalfn(bytea) IS 'compute_gradients final: the mean gradient';
CREATE AGGREGATE @extschema@.compute_gradients(model bytea, pixels bytea, label integer) (
    SFUNC = @extschema@.mlcnn_gradients_transfn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_gradients_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_gradients_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.compute_gradients(model bytea, pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_gradients_transfn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_gradients_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_gradients_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.compute_gradients(bytea, bytea, integer) IS 'the mean cross-entropy gradient over the rows, in the model''s parameter layout';
COMMENT ON AGGREGATE @extschema@.compute_gradients(bytea, real[], integer) IS 'the mean cross-entropy gradient over (real[] pixels, label) rows, in the model''s parameter layout';

CREATE FUNCTION @extschema@.mlcnn_evaluate_transfn(bytea, bytea, bytea, integer)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_evaluate_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_evaluate_transfn(bytea, bytea, real[], integer)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_evaluate_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_evaluate_combinefn(bytea, bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_evaluate_combinefn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_evaluate_finalfn(bytea)
RETURNS jsonb AS 'MODULE_PATHNAME', 'mlcnn_evaluate_finalfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_evaluate_transfn(bytea, bytea, bytea, integer) IS 'evaluate transition: queues one row, runs full batches';
COMMENT ON FUNCTION @extschema@.mlcnn_evaluate_transfn(bytea, bytea, real[], integer) IS 'evaluate transition: queues one row of real[] pixels, runs full batches';
COMMENT ON FUNCTION @extschema@.mlcnn_evaluate_combinefn(bytea, bytea) IS 'evaluate combine: adds two partial counts';
COMMENT ON FUNCTION @extschema@.mlcnn_evaluate_finalfn(bytea) IS 'evaluate final: accuracy, loss, confusion matrix, precision and recall';
CREATE AGGREGATE @extschema@.evaluate(model bytea, pixels bytea, label integer) (
    SFUNC = @extschema@.mlcnn_evaluate_transfn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_evaluate_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_evaluate_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.evaluate(model bytea, pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_evaluate_transfn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_evaluate_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_evaluate_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.evaluate(bytea, bytea, integer) IS 'rows, accuracy, mean loss, confusion matrix and per-class precision and recall of a model';
COMMENT ON AGGREGATE @extschema@.evaluate(bytea, real[], integer) IS 'rows, accuracy, mean loss, confusion matrix and per-class precision and recall of a model over real[] inputs';

-- The two halves of compute_gradients and evaluate as aggregates of their
-- own, for shards that are not Citus's: a *_partial over each shard's rows
-- (postgres_fdw pushes it down to the shard's server like any aggregate of
-- a listed extension) and a *_combine over the partials.
CREATE AGGREGATE @extschema@.evaluate_partial(model bytea, pixels bytea, label integer) (
    SFUNC = @extschema@.mlcnn_evaluate_transfn,
    STYPE = bytea,
    COMBINEFUNC = @extschema@.mlcnn_evaluate_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.evaluate_partial(model bytea, pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_evaluate_transfn,
    STYPE = bytea,
    COMBINEFUNC = @extschema@.mlcnn_evaluate_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.evaluate_combine(partial bytea) (
    SFUNC = @extschema@.mlcnn_evaluate_combinefn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_evaluate_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_evaluate_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.compute_gradients_partial(model bytea, pixels bytea, label integer) (
    SFUNC = @extschema@.mlcnn_gradients_transfn,
    STYPE = bytea,
    COMBINEFUNC = @extschema@.mlcnn_gradients_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.compute_gradients_partial(model bytea, pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_gradients_transfn,
    STYPE = bytea,
    COMBINEFUNC = @extschema@.mlcnn_gradients_combinefn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.compute_gradients_combine(partial bytea) (
    SFUNC = @extschema@.mlcnn_gradients_combinefn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_gradients_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_gradients_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.evaluate_partial(bytea, bytea, integer) IS 'evaluate''s partial result (counts) over these rows, for evaluate_combine';
COMMENT ON AGGREGATE @extschema@.evaluate_partial(bytea, real[], integer) IS 'evaluate''s partial result (counts) over these real[] rows, for evaluate_combine';
COMMENT ON AGGREGATE @extschema@.evaluate_combine(bytea) IS 'evaluate''s result from the partial results of evaluate_partial (for example one per shard)';
COMMENT ON AGGREGATE @extschema@.compute_gradients_partial(bytea, bytea, integer) IS 'compute_gradients'' partial result (summed gradients) over these rows, for compute_gradients_combine';
COMMENT ON AGGREGATE @extschema@.compute_gradients_partial(bytea, real[], integer) IS 'compute_gradients'' partial result (summed gradients) over these real[] rows, for compute_gradients_combine';
COMMENT ON AGGREGATE @extschema@.compute_gradients_combine(bytea) IS 'the mean gradient from the partial results of compute_gradients_partial';


-- ======================================================== real[] inputs
-- (section: real)
-- Every function that takes pixels bytea also takes pixels real[]: float4
-- values in the same HWC order, flattened row-major whatever the array's
-- dimensions; a NULL, NaN or infinite element is an error naming its
-- position. A model records which of the two it was trained on and takes
-- the same afterwards. An untyped literal or NULL in the pixels position
-- needs a cast (::bytea or ::real[]) to pick the form.
CREATE FUNCTION @extschema@.mlcnn_train_transfn(internal, real[], integer)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_transfn(internal, real[], integer, jsonb)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_train_transfn(internal, real[], integer, jsonb, bytea)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_train_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_train_transfn(internal, real[], integer) IS 'train_conv2d transition: buffers one row of real[] pixels';
COMMENT ON FUNCTION @extschema@.mlcnn_train_transfn(internal, real[], integer, jsonb) IS 'train_conv2d transition: buffers one row of real[] pixels';
COMMENT ON FUNCTION @extschema@.mlcnn_train_transfn(internal, real[], integer, jsonb, bytea) IS 'train_conv2d transition: buffers one row of real[] pixels';

CREATE AGGREGATE @extschema@.train_conv2d(pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_train_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_train_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.train_conv2d(pixels real[], label integer, options jsonb) (
    SFUNC = @extschema@.mlcnn_train_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_train_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.train_conv2d(pixels real[], label integer, options jsonb, init_model bytea) (
    SFUNC = @extschema@.mlcnn_train_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_train_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.train_conv2d(real[], integer) IS 'trains a CNN on (real[] pixels, label) rows with the default options (normalize auto: none); returns the model';
COMMENT ON AGGREGATE @extschema@.train_conv2d(real[], integer, jsonb) IS 'trains a CNN on (real[] pixels, label) rows with jsonb options; the input option gives the shape unless the length is a square; returns the model';
COMMENT ON AGGREGATE @extschema@.train_conv2d(real[], integer, jsonb, bytea) IS 'continues training init_model (a real[] model) on (real[] pixels, label) rows; returns the model';

CREATE FUNCTION @extschema@.predict(model bytea, pixels real[])
RETURNS integer AS 'MODULE_PATHNAME', 'predict_real'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.predict(bytea, real[]) IS 'the class the model predicts for one real[] input';

CREATE FUNCTION @extschema@.predict_proba(model bytea, pixels real[])
RETURNS real[] AS 'MODULE_PATHNAME', 'predict_proba_real'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.predict_proba(bytea, real[]) IS 'softmax probabilities per class for one real[] input';

CREATE FUNCTION @extschema@.forward_pass(model bytea, pixels real[])
RETURNS real[] AS 'MODULE_PATHNAME', 'forward_pass_real'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.forward_pass(bytea, real[]) IS 'the output logits (before softmax) for one real[] input';

CREATE FUNCTION @extschema@.calculate_loss(model bytea, pixels real[], label integer)
RETURNS double precision AS 'MODULE_PATHNAME', 'calculate_loss_real'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.calculate_loss(bytea, real[], integer) IS 'the cross-entropy loss of the model on one labelled real[] input';


-- ======================================================== model selection
-- (section: tune_conv2d)
-- tune_conv2d buffers the rows as train_conv2d does (the same combine,
-- serialize and deserialize functions: PARALLEL SAFE) and runs the search in
-- its final function, which is VOLATILE like train_conv2d's (the trials'
-- wall-clock times are recorded).
CREATE FUNCTION @extschema@.mlcnn_tune_transfn(internal, bytea, integer, jsonb)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_tune_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_tune_transfn(internal, real[], integer, jsonb)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_tune_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_tune_finalfn(internal)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_tune_finalfn'
LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_tune_transfn(internal, bytea, integer, jsonb) IS 'tune_conv2d transition: buffers one row';
COMMENT ON FUNCTION @extschema@.mlcnn_tune_transfn(internal, real[], integer, jsonb) IS 'tune_conv2d transition: buffers one row of real[] pixels';
COMMENT ON FUNCTION @extschema@.mlcnn_tune_finalfn(internal) IS 'tune_conv2d final: runs the search over the buffered rows and returns the best model';

CREATE AGGREGATE @extschema@.tune_conv2d(pixels bytea, label integer, search jsonb) (
    SFUNC = @extschema@.mlcnn_tune_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_tune_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
CREATE AGGREGATE @extschema@.tune_conv2d(pixels real[], label integer, search jsonb) (
    SFUNC = @extschema@.mlcnn_tune_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_tune_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_train_combinefn,
    SERIALFUNC = @extschema@.mlcnn_train_serialfn,
    DESERIALFUNC = @extschema@.mlcnn_train_deserialfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.tune_conv2d(bytea, integer, jsonb) IS 'searches a space of training options (grid, random or successive halving) over one buffered copy of the rows; returns the best model, every trial in model_info';
COMMENT ON AGGREGATE @extschema@.tune_conv2d(real[], integer, jsonb) IS 'tune_conv2d over real[] rows';

-- ======================================================== model averaging
-- (section: average_models)
-- average_models(model, weight): the weighted mean of models of one
-- architecture. Its state is a bytea with a combine function, so Citus and
-- parallel plans split it; the transition function is not STRICT (NULL
-- models and weights are skipped).
CREATE FUNCTION @extschema@.mlcnn_average_transfn(bytea, bytea, double precision)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_average_transfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_average_combinefn(bytea, bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_average_combinefn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.mlcnn_average_finalfn(bytea)
RETURNS bytea AS 'MODULE_PATHNAME', 'mlcnn_average_finalfn'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_average_transfn(bytea, bytea, double precision) IS 'average_models transition: adds weight x model to the sums';
COMMENT ON FUNCTION @extschema@.mlcnn_average_combinefn(bytea, bytea) IS 'average_models combine: adds two partial sums';
COMMENT ON FUNCTION @extschema@.mlcnn_average_finalfn(bytea) IS 'average_models final: the first model with the weighted mean parameters and buffers';
CREATE AGGREGATE @extschema@.average_models(model bytea, weight double precision) (
    SFUNC = @extschema@.mlcnn_average_transfn,
    STYPE = bytea,
    FINALFUNC = @extschema@.mlcnn_average_finalfn,
    COMBINEFUNC = @extschema@.mlcnn_average_combinefn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.average_models(bytea, double precision) IS 'the weighted mean of models of one architecture and normalisation (model averaging); NULL models and weights are skipped';

-- ======================================================== training across servers
-- (section: train_distributed)
-- VOLATILE: it trains (and records times); PARALLEL UNSAFE: it runs queries
-- of its own (SPI), one per round, on the relation's shards.
CREATE FUNCTION @extschema@.train_distributed(relation regclass, options jsonb DEFAULT '{}')
RETURNS bytea AS 'MODULE_PATHNAME', 'train_distributed'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.train_distributed(regclass, jsonb) IS 'data-parallel training: every shard (leaf partition, e.g. a postgres_fdw foreign table) trains local_epochs on its own rows from the global model, then the models are averaged by rows, for rounds rounds; only models cross the network';

-- ======================================================== statistics
-- (section: stats)

-- The figures of this session's mlcnn calls, since the library was loaded or
-- mlcnn_stats_reset() last ran: one row per function called.
-- VOLATILE: the figures change as mlcnn functions run, even within a query.
-- PARALLEL RESTRICTED: they are backend-local state; a parallel worker has
-- its own (empty) figures, so the call must stay in the leader.
CREATE FUNCTION @extschema@.mlcnn_stats(
    OUT function text,
    OUT calls bigint,
    OUT rows bigint,
    OUT total_ms double precision,
    OUT forward_ms double precision,
    OUT backward_ms double precision,
    OUT update_ms double precision,
    OUT loss_ms double precision,
    OUT peak_memory_bytes bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'mlcnn_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 11;
COMMENT ON FUNCTION @extschema@.mlcnn_stats() IS
'per mlcnn function, this session''s calls, rows, time by phase (ms) and peak memory of mlcnn''s own allocations (bytes) since the library was loaded or mlcnn_stats_reset()';

CREATE VIEW @extschema@.mlcnn_stats AS
    SELECT function, calls, rows, total_ms, forward_ms, backward_ms, update_ms,
           loss_ms, peak_memory_bytes
    FROM @extschema@.mlcnn_stats();
COMMENT ON VIEW @extschema@.mlcnn_stats IS
'this session''s mlcnn calls per function: calls, rows, total/forward/backward/update/loss time in ms, peak memory of mlcnn''s own allocations in bytes';

-- VOLATILE, PARALLEL RESTRICTED: it changes backend-local state, which in a
-- worker would be the worker's.
CREATE FUNCTION @extschema@.mlcnn_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'mlcnn_stats_reset'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.mlcnn_stats_reset() IS
'zeroes this session''s mlcnn_stats figures (EXPLAIN ANALYZE is not affected)';
