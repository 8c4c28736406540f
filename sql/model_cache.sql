-- The session's cache of decoded models: a model stored out of line is
-- decoded once per session, found again by later queries, and decoded anew
-- when its row gets a new value, when its TOAST table is rewritten or
-- truncated (value OIDs may then be reused), after DROP EXTENSION, and
-- never kept when it is larger than mlcnn.model_cache_memory. DEBUG1 says
-- which happened.
CREATE TABLE mc_rows AS
  SELECT * FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
                         'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz')
  WHERE id < 200;
CREATE TABLE mc_model (model bytea);
ALTER TABLE mc_model ALTER COLUMN model SET STORAGE EXTERNAL;
INSERT INTO mc_model
  SELECT train_conv2d(pixels, label,
           '{"layers": "conv(8,3) relu maxpool(2) dense(10)", "epochs": 1, "record_times": false}')
  FROM mc_rows;
SET client_min_messages = debug1;
-- first use in this session: decoded
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
-- a later query: from the session's cache
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m WHERE t.id < 10;
-- the same model passed in line (no TOAST pointer): decoded, not cached
SELECT count(predict(m.model || ''::bytea, t.pixels)) FROM mc_rows t, mc_model m WHERE t.id < 10;
RESET client_min_messages;
-- a new value in the row: decoded again, then cached again
UPDATE mc_model SET model = model || ''::bytea;
SET client_min_messages = debug1;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
RESET client_min_messages;
-- VACUUM FULL rewrites the TOAST table: the cached entry goes, decoded anew
VACUUM FULL mc_model;
SET client_min_messages = debug1;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
RESET client_min_messages;
-- a cache smaller than the model (about 55 kB) keeps nothing
SET mlcnn.model_cache_memory = '16kB';
UPDATE mc_model SET model = model || ''::bytea;
SET client_min_messages = debug1;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
RESET client_min_messages;
RESET mlcnn.model_cache_memory;
-- DROP EXTENSION frees the cache: cached before, decoded after CREATE EXTENSION
SET client_min_messages = debug1;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
RESET client_min_messages;
DROP EXTENSION mlcnn;
CREATE EXTENSION mlcnn;
SET client_min_messages = debug1;
SELECT count(predict(m.model, t.pixels)) FROM mc_rows t, mc_model m;
RESET client_min_messages;
DROP TABLE mc_rows, mc_model;
