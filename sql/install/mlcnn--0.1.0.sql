-- mlcnn 0.1.0: convolutional neural networks trained and served inside PostgreSQL.
-- Every object is schema-qualified with @extschema@ or pg_catalog, so the
-- script is safe under any search_path. No function is SECURITY DEFINER.

\echo Use "CREATE EXTENSION mlcnn" to load this file. \quit

-- ======================================================== data loading
-- (section: load_idx)

-- ======================================================== training
-- (section: train_conv2d)

-- ======================================================== inference and primitives
-- (section: predict)

-- ======================================================== statistics
-- (section: stats)
