-- mlcnn 0.1.0 -> 0.2.0: ALTER EXTENSION mlcnn UPDATE.
-- 0.2.0 writes models in format 2 (tagged sections) and still reads format 1,
-- reads its options through the jsonb API and builds every jsonb result with
-- PostgreSQL's jsonb builder. No SQL object changes; three comments say so.
-- Afterwards the objects are those of a fresh CREATE EXTENSION mlcnn (the
-- regression test sql/upgrade.sql compares them).

\echo Use "ALTER EXTENSION mlcnn UPDATE TO '0.2.0'" to load this file. \quit

COMMENT ON AGGREGATE @extschema@.train_conv2d(bytea, integer, jsonb) IS 'trains a CNN on (pixels, label) rows with jsonb options (keys and ranges: the option table of the README); returns the model';
COMMENT ON FUNCTION @extschema@.update_weights(bytea, bytea, real) IS 'one plain SGD step: model - learning_rate * gradients, written in model format 2';
COMMENT ON FUNCTION @extschema@.model_info(bytea) IS 'what a model (or gradient blob) of format 1 or 2 says about itself: format version, layers, shapes, options, history';
