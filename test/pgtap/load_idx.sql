-- pgTAP: load_idx's rows, its errors, and who may call it; files that are
-- not regular files (a FIFO nobody writes to, directories, a device, a
-- socket) are refused at once with 42809 (wrong_object_type) instead of
-- blocking the backend, and no descriptor is left open on any path.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn,
-- as a superuser (pg_ls_dir of /proc); paths are relative to the data
-- directory (mlcnn_test_data -> build/testdata, where scripts/test.sh makes
-- the FIFO mlcnn_test_data/fifo).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(27);

SELECT has_function('load_idx', ARRAY['text', 'text'], 'load_idx(text, text) exists');
SELECT is_strict('load_idx', ARRAY['text', 'text'], 'load_idx is STRICT');
SELECT volatility_is('load_idx', ARRAY['text', 'text'], 'volatile', 'load_idx is VOLATILE');

-- happy path: the "ok" files hold 12 rows, row i = label i % 10, pixels i*16 + 0..5
SELECT results_eq(
	$$SELECT id, label, pixels FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte.gz',
	                                         'mlcnn_test_data/bad/ok-labels-idx1-ubyte.gz')$$,
	$$SELECT i, i % 10, decode(
	      lpad(to_hex(i * 16), 2, '0') || lpad(to_hex(i * 16 + 1), 2, '0') ||
	      lpad(to_hex(i * 16 + 2), 2, '0') || lpad(to_hex(i * 16 + 3), 2, '0') ||
	      lpad(to_hex(i * 16 + 4), 2, '0') || lpad(to_hex(i * 16 + 5), 2, '0'), 'hex')
	  FROM generate_series(0, 11) i$$,
	'gzip rows come back in order with their labels and pixels');
SELECT is(
	(SELECT count(*)::int FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte',
	                                    'mlcnn_test_data/bad/ok-labels-idx1-ubyte')),
	12, 'raw files: 12 rows');
SELECT is(
	(SELECT count(*)::int FROM load_idx('mlcnn_test_data/synth/t10k-images-idx3-ubyte.gz',
	                                    'mlcnn_test_data/synth/t10k-labels-idx1-ubyte.gz')),
	500, 'synthetic test split: 500 rows');

-- errors and their SQLSTATEs
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/badmagic-images-idx3-ubyte.gz',
	                                'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'22000', NULL, 'bad magic number: data_exception');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/truncated-images-idx3-ubyte.gz',
	                                'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'22000',
	'IDX images file "mlcnn_test_data/bad/truncated-images-idx3-ubyte.gz" is truncated: expected 12 rows of 6 bytes, got 7 complete rows',
	'truncated data names the file and the expected rows');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/nothing-here.gz',
	                                'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'58P01', NULL, 'missing file: undefined_file');

-- ------------------------------------------------ files that could block
-- a FIFO with no writer would block open() for ever, and there neither a
-- cancel nor statement_timeout reaches the backend (PostgreSQL's signal
-- handlers restart the system call): scripts/test.sh opens the FIFO's other
-- end every 10 s while pgTAP runs, so that such a regression fails (the call
-- then reads an empty file) instead of hanging; the timeout catches one that
-- would wait in a loop that checks for interrupts
SET LOCAL statement_timeout = '5s';
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/fifo', 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'42809', 'IDX images file "mlcnn_test_data/fifo" is not a regular file',
	'a FIFO as the images file is refused at once: wrong_object_type');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte', 'mlcnn_test_data/fifo')$$,
	'42809', 'IDX labels file "mlcnn_test_data/fifo" is not a regular file',
	'a FIFO as the labels file, after the images file was opened, too');
CREATE FUNCTION pg_temp.idx_error(images text, labels text, OUT state text, OUT detail text)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM count(*) FROM load_idx(images, labels);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
END
$$;
SELECT is((SELECT detail FROM pg_temp.idx_error('mlcnn_test_data/fifo', 'mlcnn_test_data/fifo')),
	'It is a named pipe (FIFO). load_idx reads only regular files, so that reading cannot block the server.',
	'the detail says what the file is and why it is refused');
SET LOCAL statement_timeout = 0;
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data', 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'42809', 'IDX images file "mlcnn_test_data" is not a regular file', 'a directory is refused');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('.', 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'42809', NULL, 'the data directory itself is refused');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('/dev/zero', 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'42809', 'IDX images file "/dev/zero" is not a regular file', 'a character device is refused');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte', '/dev/zero')$$,
	'42809', NULL, 'a character device as the labels file is refused');
-- the server's own Unix socket, when it has one
CREATE TEMP TABLE idx_socket AS
	SELECT format('%s/.s.PGSQL.%s', trim(split_part(current_setting('unix_socket_directories'), ',', 1)),
	              current_setting('port')) AS path;
SELECT CASE WHEN pg_stat_file(path, true) IS NULL
	THEN skip('the server has no Unix socket in a folder', 1)
	ELSE is((SELECT state FROM pg_temp.idx_error(path, 'mlcnn_test_data/bad/ok-labels-idx1-ubyte')),
	        '42809', 'the server''s Unix socket is refused')
	END
FROM idx_socket;

-- ------------------------------------------------ descriptors
-- every way a call can end: refused labels after the images were opened,
-- an error in the reader after both were handed over, an error while
-- streaming, a LIMIT that stops the reading in the select list, and the
-- end of the rows. 100 rounds open 900 files; each open file also counts as
-- an external descriptor in fd.c, so a leaked count would exhaust its
-- budget (a third of max_files_per_process) long before the end.
CREATE FUNCTION pg_temp.idx_rounds(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	ok_i text := 'mlcnn_test_data/bad/ok-images-idx3-ubyte';
	ok_l text := 'mlcnn_test_data/bad/ok-labels-idx1-ubyte.gz';
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			PERFORM count(*) FROM load_idx(ok_i, 'mlcnn_test_data/fifo');
		EXCEPTION WHEN wrong_object_type THEN NULL;
		END;
		BEGIN
			PERFORM count(*) FROM load_idx(ok_i, 'mlcnn_test_data/bad/count11-labels-idx1-ubyte.gz');
		EXCEPTION WHEN data_exception THEN NULL;
		END;
		BEGIN
			PERFORM count(*) FROM load_idx('mlcnn_test_data/bad/truncated-images-idx3-ubyte.gz', ok_l);
		EXCEPTION WHEN data_exception THEN NULL;
		END;
		PERFORM (load_idx(ok_i, ok_l)).id LIMIT 2;
		PERFORM count(*) FROM load_idx(ok_i, ok_l);
	END LOOP;
END
$$;
-- the backend's open descriptors before and after n rounds
CREATE FUNCTION pg_temp.fds_around_rounds(n int, OUT before int, OUT after int) LANGUAGE plpgsql AS $$
BEGIN
	before := (SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd'));
	PERFORM pg_temp.idx_rounds(n);
	after := (SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/fd'));
END
$$;
CREATE TEMP TABLE idx_fds (before int, after int);
DO $$ BEGIN PERFORM pg_temp.idx_rounds(1); END $$;	-- warm the caches that keep files open
SELECT lives_ok('INSERT INTO idx_fds SELECT * FROM pg_temp.fds_around_rounds(100)',
	'500 calls that fail, stop early or finish: no error (the external descriptor count stays in budget)');
SELECT is(after, before, 'and the backend has as many open descriptors as before them') FROM idx_fds;

-- roles: created inside this transaction, gone after the ROLLBACK
CREATE ROLE mlcnn_tap_plain;
CREATE ROLE mlcnn_tap_reader IN ROLE pg_read_server_files;
-- pgTAP keeps its state in temporary tables; let the roles use them
DO $$
BEGIN
	EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA %s TO mlcnn_tap_plain, mlcnn_tap_reader',
	               pg_my_temp_schema()::regnamespace);
	EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA %s TO mlcnn_tap_plain, mlcnn_tap_reader',
	               pg_my_temp_schema()::regnamespace);
END
$$;

SELECT ok(has_function_privilege('mlcnn_tap_plain', 'load_idx(text, text)', 'EXECUTE'),
	'EXECUTE stays granted to PUBLIC: the check is inside the function');

SET LOCAL ROLE mlcnn_tap_plain;
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte',
	                                'mlcnn_test_data/bad/ok-labels-idx1-ubyte')$$,
	'42501', 'permission denied to read IDX files on the server',
	'an ordinary role is refused with insufficient_privilege');
SELECT throws_ok(
	$$SELECT count(*) FROM load_idx('/etc/passwd', '/etc/passwd')$$,
	'42501', NULL, 'an ordinary role learns nothing about other files either');
RESET ROLE;

SET LOCAL ROLE mlcnn_tap_reader;
SELECT is(
	(SELECT count(*)::int FROM load_idx('mlcnn_test_data/bad/ok-images-idx3-ubyte',
	                                    'mlcnn_test_data/bad/ok-labels-idx1-ubyte')),
	12, 'a member of pg_read_server_files may read');
RESET ROLE;

-- parallel query: the function may run inside a parallel plan (PARALLEL SAFE)
SELECT is(
	(SELECT proparallel::text FROM pg_proc WHERE oid = 'load_idx(text, text)'::regprocedure),
	's', 'load_idx is PARALLEL SAFE');

-- the real Fashion-MNIST, when Debian's dataset-fashion-mnist is installed:
-- 60,000 training images, 6,000 of each of the 10 classes (a property of the data set)
SELECT CASE WHEN pg_stat_file('/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz', true) IS NULL
	THEN skip('dataset-fashion-mnist is not installed', 3)
	ELSE collect_tap(
		is((SELECT count(*)::int FROM load_idx('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz',
		                                       '/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz')),
		   60000, 'Fashion-MNIST: 60,000 training rows'),
		results_eq(
			$$SELECT label, count(*)::int FROM load_idx('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz',
			                                            '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz')
			  GROUP BY label ORDER BY label$$,
			$$SELECT i, 1000 FROM generate_series(0, 9) i$$,
			'Fashion-MNIST test set: 1,000 rows of each class'),
		is((SELECT min(length(pixels)) || '/' || max(length(pixels))
		    FROM load_idx('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz',
		                  '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz')),
		   '784/784', 'Fashion-MNIST rows are 28x28 = 784 bytes'))
	END;

SELECT * FROM finish();
ROLLBACK;
