-- pgTAP: statement_timeout stops train_conv2d in every phase it lasts
-- long enough to be hit in, within one second. Two million small rows
-- make the phases before the epochs take seconds (the sort into canonical
-- order alone takes about a second): before every phase polled for
-- interrupts, such a timeout fired seconds late. Three epochs make the
-- training phase longer than the sort, so that the stops land in both
-- even when the load of the machine changes between runs.
--
-- Two full runs, timed, calibrate (the faster counts); then five runs, each its own top-level
-- statement with a statement_timeout at a fraction of that time, are
-- stopped. For each, the phase it was stopped in comes from the error's
-- context ("train_conv2d sorting the training rows ..."), and how late
-- it stopped is clock_timestamp() - statement_timestamp() - the timeout.
-- Every stop must come within 1 s of its timeout, and the runs must have
-- hit both the sort and the epochs. (The hold-out split and the z-score
-- pass last some tens of ms here; that they poll too is checked by the
-- unit test test_bound_interrupt_every_phase.)
--
-- Run by scripts/test.sh in a database with pgtap and mlcnn.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(7);

CREATE TEMP TABLE cp_rows AS
SELECT i AS id, int4send(hashint4(i)) AS pixels, i & 1 AS label FROM generate_series(1, 2000000) i;

\set o '{"input": [2, 2, 1], "layers": "dense(2)", "classes": 2, "epochs": 3, "batch_size": 256, "validation_fraction": 0.1, "normalize": "zscore"}'
CREATE TEMP TABLE cp_opts AS SELECT :'o'::jsonb AS o;
CREATE TEMP TABLE cp_run (n int PRIMARY KEY, timeout_ms float8, ms float8, state text, ctx text);

-- one training under the statement_timeout of the statement that calls this
CREATE FUNCTION pg_temp.stopped_training(n int, timeout_ms float8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	st text := 'finished';
	ctx text := '';
BEGIN
	BEGIN
		PERFORM train_conv2d(pixels, label, (SELECT o FROM cp_opts)) FROM cp_rows;
	EXCEPTION WHEN query_canceled THEN
		GET STACKED DIAGNOSTICS st = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
	END;
	INSERT INTO cp_run VALUES (n, timeout_ms,
		extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000, st, ctx);
END
$$;

-- the calibration runs, to the end: the faster of two (the first also warms
-- the caches, and a busy machine slows one of them more than the other)
SELECT pg_temp.stopped_training(0, 0);
SELECT pg_temp.stopped_training(-1, 0);
SELECT is((SELECT string_agg(DISTINCT state, ',') FROM cp_run WHERE n <= 0), 'finished',
	'the calibration runs train to the end');
SELECT diag(format('calibration: %s rows trained in %s and %s ms', 2000000,
	round((SELECT ms FROM cp_run WHERE n = 0)::numeric), round((SELECT ms FROM cp_run WHERE n = -1)::numeric)));

-- five stops at fractions of that time
CREATE TEMP TABLE cp_plan AS
SELECT k AS n, round((SELECT min(ms) FROM cp_run WHERE n <= 0) * f) AS timeout_ms
FROM unnest(ARRAY[0.1, 0.25, 0.5, 0.75, 0.92]) WITH ORDINALITY AS u(f, k);
\o /dev/null
SELECT format('SET LOCAL statement_timeout = %s', timeout_ms),
	format('SELECT pg_temp.stopped_training(%s, %s)', n, timeout_ms),
	'SET LOCAL statement_timeout = 0'
FROM cp_plan ORDER BY n
\gexec
\o

-- (on a loaded machine a run may be faster than the calibration and end
-- before its timeout: that is no late stop either)
SELECT ok((state = 'canceling statement due to statement timeout' AND ms - timeout_ms < 1000) OR
		  (state = 'finished' AND ms <= timeout_ms),
	format('stop %s, timeout %s ms, %s', n, timeout_ms,
	       CASE WHEN state = 'finished' THEN format('finished before it, in %s ms', round(ms::numeric))
	       ELSE format('in %s: stopped %s ms after it',
	                   coalesce(substring(ctx FROM 'train_conv2d ([a-z ,-]+) \('), 'the scan'),
	                   round((ms - timeout_ms)::numeric)) END))
FROM cp_run WHERE n > 0 ORDER BY n;
SELECT ok(EXISTS (SELECT FROM cp_run WHERE ctx LIKE '%train_conv2d sorting%')
	AND EXISTS (SELECT FROM cp_run WHERE ctx LIKE '%train_conv2d training%'),
	'the stops hit the sort into canonical order and the epochs');
SELECT diag(format('slowest stop: %s ms after its timeout',
	(SELECT round(max(ms - timeout_ms)::numeric) FROM cp_run WHERE n > 0)));

SELECT * FROM finish();
ROLLBACK;
