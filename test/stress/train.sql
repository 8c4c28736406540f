-- pgbench (make stress): one training of the default network on 512 rows
-- with the options run.sh used for its single-session reference (one epoch,
-- 2 OpenBLAS threads, record_times false), stored; run.sh checks afterwards
-- that every stored model is that reference byte for byte.
INSERT INTO st_trained (client, blob)
SELECT :client_id, train_conv2d(pixels, label, (SELECT value::jsonb FROM st_ref WHERE what = 'options'))
FROM st_train WHERE id < 512;
