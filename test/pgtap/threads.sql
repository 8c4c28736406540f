-- pgTAP: the threads inside a backend. A role that is not a superuser sets
-- mlcnn.threads = 256 and trains with "threads": 256; the backend must still
-- run at most 1 + 2 * (cores - 1) threads (itself, training's helper threads
-- and OpenBLAS's, each at most one fewer than the cores), and every thread
-- but the backend's own must block PostgreSQL's signals (SIGHUP, SIGINT,
-- SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM: bits of SigBlk in
-- /proc/<pid>/task/<tid>/status), so that statement_timeout's SIGALRM or a
-- cancel never runs a handler off the backend's thread.
--
-- Superusers keep the whole 1..256 range: with mlcnn.threads = cores + 1 a
-- superuser's backend gets one more OpenBLAS thread than it had, so more
-- threads than the bound above, and the new thread blocks the signals too.
--
-- COPY ... TO PROGRAM runs a program from the backend; the masks must hold
-- after it and another evaluate. (glibc's popen does not run fork handlers,
-- so OpenBLAS keeps its pool there; the pool a fork does take down, and its
-- rebuilding with signals blocked, is what test/preload.sh checks: there
-- every backend is forked by a postmaster that loaded OpenBLAS.)
--
-- Cores are counted as threads.c counts them: the processor lines of
-- /proc/cpuinfo, or fewer when the backend's Cpus_allowed_list allows fewer.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn,
-- as a superuser (pg_ls_dir and pg_read_file of /proc, COPY TO PROGRAM).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(14);

-- 300 synthetic 28x28 images
CREATE TEMP TABLE th_rows AS
SELECT id, label, pixels
FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
              'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz')
WHERE id < 300;
CREATE TEMP TABLE th_model (m bytea);

-- the cores the cap allows
CREATE FUNCTION pg_temp.cores() RETURNS int LANGUAGE sql AS $$
	SELECT least(
		(SELECT count(*)::int FROM regexp_matches(pg_read_file('/proc/cpuinfo'), '^processor\s', 'gn')),
		(SELECT sum(CASE WHEN r LIKE '%-%'
		                 THEN split_part(r, '-', 2)::int - split_part(r, '-', 1)::int + 1
		                 ELSE 1 END)::int
		 FROM regexp_split_to_table(
		     (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
		                   'Cpus_allowed_list:\s+(\S+)'))[1], ',') r)) $$;

-- this backend's threads and their blocked-signal masks
CREATE FUNCTION pg_temp.tasks(OUT tid int, OUT sigblk bigint) RETURNS SETOF record LANGUAGE sql AS $$
	SELECT t::int, ('x' || lpad((regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/task/' || t || '/status'),
	                                          'SigBlk:\s+([0-9a-f]+)'))[1], 16, '0'))::bit(64)::bigint
	FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/task') t $$;

-- the signals PostgreSQL handles, as a mask (bit signo - 1)
CREATE FUNCTION pg_temp.pg_signals() RETURNS bigint LANGUAGE sql AS $$
	SELECT sum(1::bigint << (s - 1))::bigint
	FROM unnest(ARRAY[1, 2, 3, 10, 12, 14, 15]) s $$;  -- HUP INT QUIT USR1 USR2 ALRM TERM

-- threads other than the backend's own that leave one of those signals unblocked
CREATE FUNCTION pg_temp.unblocked() RETURNS int LANGUAGE sql AS $$
	SELECT count(*)::int FROM pg_temp.tasks()
	WHERE tid <> pg_backend_pid() AND sigblk & pg_temp.pg_signals() <> pg_temp.pg_signals() $$;

CREATE FUNCTION pg_temp.nthreads() RETURNS int LANGUAGE sql AS $$
	SELECT count(*)::int FROM pg_temp.tasks() $$;

-- a plain role, gone with the ROLLBACK; it may use pgTAP's temporary tables
-- and the rows and model tables
CREATE ROLE mlcnn_tap_threads LOGIN;
DO $$
BEGIN
	EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA %s TO mlcnn_tap_threads',
	               pg_my_temp_schema()::regnamespace);
	EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA %s TO mlcnn_tap_threads',
	               pg_my_temp_schema()::regnamespace);
END
$$;

-- ------------------------------------------------------------ a plain role
SET LOCAL ROLE mlcnn_tap_threads;
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), 'the role is not a superuser');
SET LOCAL mlcnn.threads = 256;
SELECT is(current_setting('mlcnn.threads'), '256', 'a plain role may set mlcnn.threads = 256 (the cap is on what runs)');
SELECT lives_ok(
	$$INSERT INTO th_model
	  SELECT train_conv2d(pixels, label, '{"layers": "conv(8,3) relu maxpool(2) flatten dense(10)",
	                                       "epochs": 1, "threads": 256}') FROM th_rows$$,
	'the plain role trains with "threads": 256');
SELECT ok((SELECT (evaluate(m, pixels, label)->>'accuracy')::float8 >= 0 FROM th_model, th_rows),
	'and evaluates with mlcnn.threads = 256');
RESET ROLE;

SELECT diag('cores ' || pg_temp.cores() || ', threads after the plain role ' || pg_temp.nthreads());
SELECT cmp_ok(pg_temp.nthreads(), '<=', 1 + 2 * (pg_temp.cores() - 1),
	'the backend runs at most 1 + 2 * (cores - 1) threads');
SELECT is(pg_temp.unblocked(), 0, 'every other thread blocks HUP, INT, QUIT, USR1, USR2, ALRM and TERM');
SELECT ok((SELECT sigblk & pg_temp.pg_signals() <> pg_temp.pg_signals() FROM pg_temp.tasks()
           WHERE tid = pg_backend_pid()),
	'the backend''s own thread leaves them unblocked: its handlers run there');

-- ------------------------------------------------------------ a superuser
CREATE TEMP TABLE th_count AS SELECT pg_temp.nthreads() AS before;
DO $$ BEGIN PERFORM set_config('mlcnn.threads', (pg_temp.cores() + 1)::text, true); END $$;
SELECT ok((SELECT (evaluate(m, pixels, label)->>'accuracy')::float8 >= 0 FROM th_model, th_rows),
	'a superuser evaluates with mlcnn.threads = cores + 1');
SELECT cmp_ok(pg_temp.nthreads(), '>', (SELECT before FROM th_count),
	'a superuser may run more OpenBLAS threads than cores: the backend gained a thread');
SELECT cmp_ok(pg_temp.nthreads(), '>', 1 + 2 * (pg_temp.cores() - 1),
	'so superusers may pass the bound that holds for other roles');
SELECT is(pg_temp.unblocked(), 0, 'the thread added for the superuser blocks the signals too');

-- ------------------------------------------------------------ a program run from the backend
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null';
SELECT is(pg_temp.unblocked(), 0, 'after COPY TO PROGRAM the threads still block the signals');
SET LOCAL mlcnn.threads = 0;
SELECT ok((SELECT (evaluate(m, pixels, label)->>'accuracy')::float8 >= 0 FROM th_model, th_rows),
	'the backend evaluates after COPY TO PROGRAM');
SELECT is(pg_temp.unblocked(), 0, 'and every thread but its own still blocks the signals');

SELECT * FROM finish();
ROLLBACK;
