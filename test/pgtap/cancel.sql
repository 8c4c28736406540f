-- pgTAP: cancelling training. Twenty trainings in one session, each of
-- which would run for tens of seconds, are stopped by a 200 ms
-- statement_timeout. Each must stop within one second of the timeout
-- (training checks for interrupts after every batch), raise query_canceled
-- (caught here by a PL/pgSQL EXCEPTION block, so the session carries on),
-- and leave nothing behind: the backend's resident memory (VmRSS of
-- /proc/<pid>/status) after the 20th is within 16 MB of what it was after
-- the 5th, where one leaked training (its 1.5 MB of rows, 3.6 MB of
-- parameters, gradients and Adam moments, several MB of activations) would
-- already show, and a short training afterwards gives the same model bytes
-- as before the cancellations.
--
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn,
-- as a superuser (pg_read_file of /proc). Test data: mlcnn_test_data/synth.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(25);

-- 2,000 synthetic 28x28 images
CREATE TEMP TABLE cn_rows AS
SELECT id, label, pixels
FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
              'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');

-- resident memory of this backend, kB
CREATE FUNCTION pg_temp.rss_kb() RETURNS bigint LANGUAGE sql AS $$
	SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+) kB'))[1]::bigint $$;

-- four kinds of long training, taken in turn: the default network (Adam),
-- the same on 2 OpenBLAS threads, SGD with a validation hold-out (checked
-- between validation batches too), and batches of 256 (the longest wait
-- between two interrupt checks)
CREATE TEMP TABLE cn_kind (k int PRIMARY KEY, what text, opts jsonb);
INSERT INTO cn_kind VALUES
	(0, 'default net, Adam, 1 thread', '{"epochs": 50, "threads": 1}'),
	(1, 'default net, Adam, 2 threads', '{"epochs": 50, "threads": 2}'),
	(2, 'SGD with a 20% validation hold-out', '{"epochs": 50, "optimizer": "sgd", "validation_fraction": 0.2}'),
	(3, 'batches of 256', '{"epochs": 100, "batch_size": 256}');

CREATE TEMP TABLE cn_run (n int PRIMARY KEY, what text, ms float8, state text, rss_kb bigint);

-- one training, stopped by the statement_timeout of the statement that calls this
CREATE FUNCTION pg_temp.cancelled_training(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	st text := 'finished';
	kind record;
BEGIN
	SELECT * INTO kind FROM cn_kind WHERE k = n % 4;
	BEGIN
		PERFORM train_conv2d(pixels, label, kind.opts) FROM cn_rows;
	EXCEPTION WHEN query_canceled THEN
		GET STACKED DIAGNOSTICS st = MESSAGE_TEXT;
	END;
	INSERT INTO cn_run
	VALUES (n, kind.what, extract(epoch FROM clock_timestamp() - t0) * 1000, st, pg_temp.rss_kb());
END
$$;

-- a short training that finishes, before and after the cancellations
CREATE TEMP TABLE cn_ref AS
SELECT train_conv2d(pixels, label,
	'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 32, "record_times": false}') AS blob
FROM cn_rows WHERE id < 256;

-- twenty top-level statements, each with its own 200 ms timeout
SET LOCAL statement_timeout = '200ms';
\o /dev/null
SELECT format('SELECT pg_temp.cancelled_training(%s)', n) FROM generate_series(1, 20) n
\gexec
\o
SET LOCAL statement_timeout = 0;

SELECT ok(state = 'canceling statement due to statement timeout' AND ms < 200 + 1000,
	format('training %s (%s) stopped by the timeout after %s ms', n, what, round(ms::numeric)))
FROM cn_run ORDER BY n;
SELECT is((SELECT count(*)::int FROM cn_run), 20, 'all 20 cancelled trainings returned control to the session');
SELECT cmp_ok((SELECT max(ms) - 200 FROM cn_run), '<', 1000::float8,
	format('the slowest stop came %s ms after the 200 ms timeout',
	       (SELECT round(max(ms)::numeric - 200) FROM cn_run)));
SELECT cmp_ok(
	(SELECT rss_kb FROM cn_run WHERE n = 20) - (SELECT rss_kb FROM cn_run WHERE n = 5), '<', 16384::bigint,
	format('resident memory does not grow across cancellations: %s kB after the 5th, %s kB after the 20th (slack 16384 kB)',
	       (SELECT rss_kb FROM cn_run WHERE n = 5), (SELECT rss_kb FROM cn_run WHERE n = 20)));
SELECT is(
	(SELECT train_conv2d(pixels, label,
		'{"layers": "conv(4,3) relu maxpool(2) dense(10)", "epochs": 1, "batch_size": 32, "record_times": false}')
	 FROM cn_rows WHERE id < 256),
	(SELECT blob FROM cn_ref),
	'after the cancellations, a training gives the same model bytes as before them');
SELECT is(
	(SELECT count(*)::int FROM cn_rows r, cn_ref m WHERE predict(m.blob, r.pixels) BETWEEN 0 AND 9),
	2000, 'and the backend still predicts every row');

SELECT * FROM finish();
ROLLBACK;
