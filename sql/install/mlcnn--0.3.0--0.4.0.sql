-- mlcnn 0.3.0 -> 0.4.0: ALTER EXTENSION mlcnn UPDATE.
-- Adds the real[] forms of train_conv2d, predict, predict_proba,
-- forward_pass, calculate_loss, compute_gradients and evaluate, and
-- tune_conv2d (model selection: grid, random, successive halving); gives
-- compute_gradients and evaluate a bytea state with a combine function, so
-- that parallel plans and Citus split them; adds average_models and
-- train_distributed. Models of
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

-- compute_gradients and evaluate get a bytea state with a combine function:
-- the old aggregates and their support functions go first (a view that
-- uses one of them stops the update; drop it and make it again after).
DROP AGGREGATE @extschema@.compute_gradients(bytea, bytea, integer);
DROP AGGREGATE @extschema@.evaluate(bytea, bytea, integer);
DROP FUNCTION @extschema@.mlcnn_gradients_transfn(internal, bytea, bytea, integer);
DROP FUNCTION @extschema@.mlcnn_gradients_finalfn(internal);
DROP FUNCTION @extschema@.mlcnn_evaluate_transfn(internal, bytea, bytea, integer);
DROP FUNCTION @extschema@.mlcnn_evaluate_finalfn(internal);

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

