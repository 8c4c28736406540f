-- pgTAP: load_idx's rows, its errors, and who may call it.
-- Run by scripts/test.sh in a database with the extensions pgtap and mlcnn;
-- paths are relative to the data directory (mlcnn_test_data -> build/testdata).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off

BEGIN;
SELECT plan(17);

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
