-- mlcnn 0.3.0 -> 0.4.0: ALTER EXTENSION mlcnn UPDATE.
-- Adds the real[] forms of train_conv2d, predict, predict_proba,
-- forward_pass, calculate_loss, compute_gradients and evaluate, and
-- tune_conv2d (model selection: grid, random, successive halving). Models of
-- bytea pixels are unchanged (format 2); a model trained on real[] rows has
-- one more section, which 0.3.0 refuses to read.
-- Afterwards the objects are those of a fresh CREATE EXTENSION mlcnn (the
-- regression test sql/upgrade.sql compares them).

\echo Use "ALTER EXTENSION mlcnn UPDATE TO '0.4.0'" to load this file. \quit

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

CREATE FUNCTION @extschema@.mlcnn_gradients_transfn(internal, bytea, real[], integer)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_gradients_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_gradients_transfn(internal, bytea, real[], integer) IS 'compute_gradients transition: queues one row of real[] pixels, runs full batches';
CREATE AGGREGATE @extschema@.compute_gradients(model bytea, pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_gradients_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_gradients_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.compute_gradients(bytea, real[], integer) IS 'the mean cross-entropy gradient over (real[] pixels, label) rows, in the model''s parameter layout';

CREATE FUNCTION @extschema@.mlcnn_evaluate_transfn(internal, bytea, real[], integer)
RETURNS internal AS 'MODULE_PATHNAME', 'mlcnn_evaluate_transfn_real'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.mlcnn_evaluate_transfn(internal, bytea, real[], integer) IS 'evaluate transition: queues one row of real[] pixels, runs full batches';
CREATE AGGREGATE @extschema@.evaluate(model bytea, pixels real[], label integer) (
    SFUNC = @extschema@.mlcnn_evaluate_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.mlcnn_evaluate_finalfn,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE @extschema@.evaluate(bytea, real[], integer) IS 'rows, accuracy, mean loss, confusion matrix and per-class precision and recall of a model over real[] inputs';

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

