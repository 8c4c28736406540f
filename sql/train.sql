-- train_conv2d: its three forms, the options, NULL rows, continued training
-- and every kind of bad input. The data is the synthetic set of the tests
-- (build/testdata/synth, 2,000 + 500 rows of 28x28, 10 classes). Outputs are
-- properties (booleans, counts, the options as stored), never numbers
-- copied from a run. After each error, the SQLSTATE.
\set SHOW_CONTEXT never
-- a small dropout-free net, one epoch, no wall-clock times: fast and exact
\set small '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1, "learning_rate": 0.01, "record_times": false}'

CREATE TEMP TABLE train AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');
CREATE TEMP TABLE test AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz');

-- the three forms, each with combine, serialise and deserialise functions
SELECT p.oid::regprocedure AS aggregate, a.aggcombinefn <> 0 AS combine,
       a.aggserialfn <> 0 AS serial, a.aggdeserialfn <> 0 AS deserial, p.proparallel
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
WHERE p.proname = 'train_conv2d' ORDER BY p.pronargs;

-- ---------------------------------------------------------------- 2 arguments
-- the defaults (options.h: the default layer spec for the class count,
-- with dropout; Adam; one-cycle; recorded times) on the first 64 rows: the
-- same training as options '{}' or NULL (weights equal; only the recorded
-- times differ). The default values themselves are the unit tests' business.
CREATE TEMP TABLE m_default AS
  SELECT (SELECT train_conv2d(pixels, label) FROM train WHERE id < 64) AS two,
         (SELECT train_conv2d(pixels, label, '{}') FROM train WHERE id < 64) AS empty,
         (SELECT train_conv2d(pixels, label, NULL) FROM train WHERE id < 64) AS null_options;
SELECT model_info(two)->'options' = model_info(empty)->'options' AS same_as_empty,
       model_info(two)->'options' = model_info(null_options)->'options' AS same_as_null,
       NOT EXISTS (SELECT FROM model_weights(two) a FULL JOIN model_weights(empty) b USING (name)
                   WHERE a.weights IS DISTINCT FROM b.weights) AS same_weights,
       model_info(two)->>'layers' LIKE '%dropout(%dense(10)' AS default_spec,
       model_info(two)->'options'->>'optimizer' AS optimizer,
       model_info(two)->'options'->'record_times' AS record_times
FROM m_default;
SELECT model_info(two)->'rows_trained' AS rows_trained,
       count(*) = (model_info(two)->'options'->>'epochs')::int AS one_entry_per_epoch,
       (model_info(two)->>'training_seconds')::float8 > 0 AS timed,
       bool_and((e->>'seconds')::float8 >= 0) AS epochs_timed
FROM m_default, jsonb_array_elements(model_info(two)->'history') e GROUP BY two;

-- ---------------------------------------------------------------- 3 arguments
CREATE TEMP TABLE m_small AS
  SELECT train_conv2d(pixels, label, :'small') AS model FROM train;
SELECT model_info(model)->>'layers' AS layers, model_info(model)->'input' AS input,
       model_info(model)->'rows_trained' AS rows_trained,
       model_info(model)->'rows_skipped' AS rows_skipped,
       jsonb_array_length(model_info(model)->'history') AS epochs,
       model_info(model)->'training_seconds' AS training_seconds
FROM m_small;
-- one epoch of this net already separates the ten shapes far above chance (0.1)
SELECT (evaluate(model, pixels, label)->>'accuracy')::float8 > 0.5 AS learned
FROM m_small, test;
-- options that are not defaults are stored as given; keys are case-sensitive,
-- enum values are not
SELECT model_info(train_conv2d(pixels, label,
         '{"layers": "flatten dense(10)", "epochs": 2, "batch_size": 100,
           "optimizer": "SGD", "learning_rate": 0.05, "lr_schedule": "Cosine",
           "momentum": 0.5, "weight_decay": 0.0001, "seed": 7, "normalize": "zscore",
           "validation_fraction": 0.2, "threads": 1, "record_times": false,
           "input": [28, 28, 1], "classes": 10}'))->'options' AS options
FROM train;
-- a hold-out fills validation_accuracy; zscore stores its statistics
SELECT bool_and((e->>'validation_accuracy')::float8 BETWEEN 0 AND 1) AS validated,
       (model_info(model)->'normalize'->>'mean')::float8 BETWEEN 0 AND 1 AS mean_ok,
       (model_info(model)->'normalize'->>'std')::float8 > 0 AS std_ok
FROM (SELECT train_conv2d(pixels, label,
        '{"layers": "flatten dense(10)", "epochs": 2, "normalize": "zscore",
          "validation_fraction": 0.25, "record_times": false}') AS model
      FROM train) t, jsonb_array_elements(model_info(model)->'history') e
GROUP BY model;
-- an image shape given explicitly: 784 bytes as 14x28x2 (two channels)
SELECT model_info(train_conv2d(pixels, label,
         '{"layers": "conv(2,3) flatten dense(10)", "input": [14, 28, 2], "epochs": 1}'))->'input'
FROM train;
-- classes: two of them, labels 0 and 1 only
SELECT model_info(m)->'classes' AS classes,
       (model_info(m)->>'rows_trained')::int = (SELECT count(*) FROM train WHERE label < 2) AS rows_ok
FROM (SELECT train_conv2d(pixels, label, '{"layers": "flatten dense(2)", "classes": 2, "epochs": 1}') m
      FROM train WHERE label < 2) t;
-- no rows: NULL, like sum()
SELECT train_conv2d(pixels, label, :'small') IS NULL AS null_model FROM train WHERE false;
-- one group per label set: GROUP BY gives one model per group
SELECT label < 5 AS low,
       (model_info(train_conv2d(pixels, label, :'small'))->>'rows_trained')::int = count(*) AS rows_ok
FROM train GROUP BY label < 5 ORDER BY 1;

-- ------------------------------------------------------------------ NULL rows
-- rows with NULL pixels or a NULL label are skipped and counted; the model's
-- weights are those of training without them
CREATE TEMP TABLE with_nulls AS
  SELECT id, pixels, label FROM train
  UNION ALL SELECT -1, NULL, 3
  UNION ALL SELECT -2, pixels, NULL FROM train WHERE id = 0
  UNION ALL SELECT -3, NULL, NULL;
SELECT model_info(model)->'rows_trained' AS rows_trained,
       model_info(model)->'rows_skipped' AS rows_skipped,
       NOT EXISTS (SELECT FROM model_weights(model) a
                   JOIN model_weights((SELECT model FROM m_small)) b USING (name)
                   WHERE a.weights <> b.weights) AS same_weights
FROM (SELECT train_conv2d(pixels, label, :'small') AS model FROM with_nulls) t;
-- only NULL rows: an error, not an empty model
SELECT train_conv2d(NULL::bytea, label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE

-- ----------------------------------------------------------------- 4 arguments
-- a NULL init_model is training from scratch: the same bytes as 3 arguments
SELECT train_conv2d(pixels, label, :'small', NULL) = (SELECT model FROM m_small) AS same
FROM train;
-- continuing with the smallest learning rate keeps the initial weights (to
-- float rounding): the weights come from init_model, not a fresh start
SELECT bool_and(abs(a - b) < 1e-5) AS kept_init_weights
FROM (SELECT train_conv2d(pixels, label,
        '{"layers": "conv(4,3) relu maxpool(2) flatten dense(10)", "epochs": 1,
          "optimizer": "sgd", "learning_rate": 1e-9, "record_times": false}',
        (SELECT model FROM m_small)) AS model FROM train) t,
     model_weights(t.model) w1
     JOIN model_weights((SELECT model FROM m_small)) w2 USING (name),
     unnest(w1.weights, w2.weights) u(a, b);
-- a second epoch from the first model starts where the first ended: its
-- training loss is below the first epoch's
CREATE TEMP TABLE m_more AS
  SELECT train_conv2d(pixels, label, :'small', (SELECT model FROM m_small)) AS model FROM train;
SELECT (model_info(c.model)->'history'->0->>'loss')::float8 <
       (model_info(s.model)->'history'->0->>'loss')::float8 AS loss_lower,
       c.model <> s.model AS changed,
       model_info(c.model)->'rows_trained' AS rows_trained
FROM m_more c, m_small s;
-- another architecture, or other classes: an error naming both
SELECT train_conv2d(pixels, label, '{"layers": "flatten dense(10)", "epochs": 1}',
                    (SELECT model FROM m_small)) FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label,
                    '{"layers": "conv(4,3) relu maxpool(2) flatten dense(12)", "classes": 12, "epochs": 1}',
                    (SELECT model FROM m_small)) FROM train;
\echo :LAST_ERROR_SQLSTATE
-- gradients or bytes that are no model
SELECT train_conv2d(pixels, label, :'small',
                    (SELECT compute_gradients(model, pixels, label) FROM m_small, test)) FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, :'small', '\x4d4c434e4e4d444c'::bytea) FROM train;
\echo :LAST_ERROR_SQLSTATE

-- -------------------------------------------------------------- bad options
-- unknown keys name the key, the nearest known one, and every allowed key
SELECT train_conv2d(pixels, label, '{"epoch": 2}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"colour": true}') FROM train;
\echo :LAST_ERROR_SQLSTATE
-- wrong types
SELECT train_conv2d(pixels, label, '{"epochs": "2"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"epochs": 2.5}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"learning_rate": "fast"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"layers": 3}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"record_times": 1}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"input": [28, 28]}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '[1, 2]') FROM train;
\echo :LAST_ERROR_SQLSTATE
-- out of range
SELECT train_conv2d(pixels, label, '{"epochs": 0}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"batch_size": 100000}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"classes": 1}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"learning_rate": -0.1}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"learning_rate": 0}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"validation_fraction": 0.9}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"optimizer": "rmsprop"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"lr_schedule": "linear"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"normalize": "max"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
-- a layer spec that does not parse, and one that does not fit the input
SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3) relu bogus dense(10)"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"layers": "conv(4,30) flatten dense(10)"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"layers": "flatten dense(7)"}') FROM train;
\echo :LAST_ERROR_SQLSTATE
-- a batch larger than the rows
SELECT train_conv2d(pixels, label, '{"layers": "flatten dense(10)", "batch_size": 5000}') FROM train;
\echo :LAST_ERROR_SQLSTATE
-- the options must be the same for every row (here they alternate)
SELECT train_conv2d(pixels, label,
                    format('{"layers": "flatten dense(10)", "epochs": %s}', 1 + id % 2)::jsonb)
FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label,
                    CASE WHEN id < 1999 THEN '{"epochs": 1}'::jsonb END ORDER BY id)
FROM train;
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- bad rows
-- a label outside [0, classes) names the label and the range
SELECT train_conv2d(pixels, CASE WHEN id = 7 THEN 10 ELSE label END, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, CASE WHEN id = 7 THEN -1 ELSE label END, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(pixels, label, '{"classes": 5}') FROM train WHERE label = 7;
\echo :LAST_ERROR_SQLSTATE
-- a pixel length that differs from the first row's names both lengths
SELECT train_conv2d(p, l, :'small' ORDER BY o)
FROM (VALUES (1, '\x01020304'::bytea, 1), (2, '\x010203040506070809'::bytea, 1)) v(o, p, l);
\echo :LAST_ERROR_SQLSTATE
SELECT train_conv2d(CASE WHEN id = 1500 THEN substr(pixels, 2) ELSE pixels END, label, :'small' ORDER BY id)
FROM train;
\echo :LAST_ERROR_SQLSTATE
-- and so does one that differs from the "input" option
SELECT train_conv2d(pixels, label, '{"input": [28, 28, 3]}') FROM train;
\echo :LAST_ERROR_SQLSTATE
-- a length that is neither a square nor three times one, without "input"
SELECT train_conv2d('\x01020304050607'::bytea, 1);
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------- mlcnn.max_train_memory
-- far too little for this training: 54000 with the figures and a hint
SET mlcnn.max_train_memory = '64kB';
SELECT train_conv2d(pixels, label, :'small') FROM train;
\echo :LAST_ERROR_SQLSTATE
RESET mlcnn.max_train_memory;
SELECT length(train_conv2d(pixels, label, :'small')) > 0 AS fits FROM train WHERE id < 100;

-- the declared labels
SELECT p.oid::regprocedure, provolatile, proparallel, proisstrict
FROM pg_proc p WHERE proname LIKE 'mlcnn\_train\_%' ORDER BY p.oid::regprocedure::text;

-- augmentation: "augment": {"hflip": ..., "shift": ...} sets augment_hflip and
-- augment_shift; the model records them; the same seed gives the same model
CREATE TEMP TABLE m_aug AS
  SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "record_times": false, "augment": {"hflip": true, "shift": 2}}') AS m
  FROM train WHERE id < 200;
SELECT model_info(m)->'options'->'augment_hflip' AS hflip, model_info(m)->'options'->'augment_shift' AS shift,
       m = (SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "record_times": false, "augment_hflip": true, "augment_shift": 2}') FROM train WHERE id < 200) AS same_model,
       m <> (SELECT train_conv2d(pixels, label, '{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "record_times": false}') FROM train WHERE id < 200) AS differs_from_none
FROM m_aug;
SELECT train_conv2d(pixels, label, '{"augment": {"vflip": true}}') FROM train WHERE id < 10;
SELECT train_conv2d(pixels, label, '{"augment": {"shift": 17}}') FROM train WHERE id < 10;
