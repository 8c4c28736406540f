-- load_idx: IDX files read on the server. Paths are relative to the data
-- directory, where scripts/db.sh and scripts/test.sh link mlcnn_test_data to
-- build/testdata (written by data/idxtool; see data/README.md for what the
-- files hold). After each error, the SQLSTATE.
\set SHOW_CONTEXT never
\set ok_images 'mlcnn_test_data/bad/ok-images-idx3-ubyte'
\set ok_labels 'mlcnn_test_data/bad/ok-labels-idx1-ubyte'
\set bad 'mlcnn_test_data/bad/'

-- good files, gzip: row i has label i % 10 and pixels i*16 + j, j = 0..5
SELECT count(*), min(id), max(id),
       bool_and(length(pixels) = 6) AS six_bytes,
       bool_and(label = id % 10) AS labels_ok,
       bool_and(get_byte(pixels, 0) = id * 16 AND get_byte(pixels, 5) = id * 16 + 5) AS pixels_ok
FROM load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz');
SELECT id, label, pixels FROM load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz')
WHERE id IN (0, 1, 11);

-- raw files give the same rows, and so does a raw/gzip mix
SELECT count(*) FROM load_idx(:'ok_images', :'ok_labels');
SELECT count(*) AS differences FROM (
  (SELECT * FROM load_idx(:'ok_images', :'ok_labels')
   EXCEPT SELECT * FROM load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz'))
  UNION ALL
  (SELECT * FROM load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz')
   EXCEPT SELECT * FROM load_idx(:'ok_images', :'ok_labels' || '.gz'))
) d;

-- 4-dim images (n, h, w, c): pixels are h*w*c bytes, HWC interleaved
SELECT id, label, length(pixels), pixels
FROM load_idx(:'bad' || 'hwc-images-idx4-ubyte.gz', :'bad' || 'hwc-labels-idx1-ubyte.gz');

-- the synthetic set of the tests: 2,000 training rows of 28x28, 10 classes
SELECT count(*), count(DISTINCT id), min(id), max(id),
       bool_and(length(pixels) = 784) AS all_784,
       count(DISTINCT label) AS classes, min(label), max(label)
FROM load_idx('mlcnn_test_data/synth/train-images-idx3-ubyte.gz',
              'mlcnn_test_data/synth/train-labels-idx1-ubyte.gz');

-- LIMIT, in FROM and in the select list (where the rows stream and the
-- reading stops early), and the result can feed a table
SELECT id FROM load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz') LIMIT 3;
SELECT (load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz')).label LIMIT 4;
CREATE TEMP TABLE digits AS
  SELECT * FROM load_idx(:'ok_images' || '.gz', :'ok_labels' || '.gz');
SELECT label, count(*) FROM digits GROUP BY label ORDER BY label;

-- STRICT: a NULL path gives no rows
SELECT count(*) FROM load_idx(NULL, :'ok_labels');

-- every kind of bad input
-- a magic number that is not unsigned-byte images
SELECT count(*) FROM load_idx(:'bad' || 'badmagic-images-idx3-ubyte.gz', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
-- a labels file where the images belong, and the other way round
SELECT count(*) FROM load_idx(:'ok_labels', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM load_idx(:'ok_images', :'ok_images');
\echo :LAST_ERROR_SQLSTATE
-- 12 images, 11 labels
SELECT count(*) FROM load_idx(:'ok_images', :'bad' || 'count11-labels-idx1-ubyte.gz');
\echo :LAST_ERROR_SQLSTATE
-- the header promises 12 rows, the data holds 7 and a half
SELECT count(*) FROM load_idx(:'bad' || 'truncated-images-idx3-ubyte.gz', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
-- dimensions out of range
SELECT count(*) FROM load_idx(:'bad' || 'zeroheight-images-idx3-ubyte.gz', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM load_idx(:'bad' || 'wide-images-idx3-ubyte.gz', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
-- an empty file, and a header cut short
SELECT count(*) FROM load_idx(:'bad' || 'empty-images-idx3-ubyte', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM load_idx(:'bad' || 'shortheader-images-idx3-ubyte', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
-- missing files, and a directory
SELECT count(*) FROM load_idx(:'bad' || 'no-such-images.gz', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM load_idx(:'ok_images', :'bad' || 'no-such-labels.gz');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM load_idx('mlcnn_test_data/bad', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE

-- only superusers and pg_read_server_files may read server files
CREATE ROLE regress_mlcnn_plain;
CREATE ROLE regress_mlcnn_reader IN ROLE pg_read_server_files;
SET ROLE regress_mlcnn_plain;
SELECT count(*) FROM load_idx(:'ok_images', :'ok_labels');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_mlcnn_reader;
SELECT count(*) FROM load_idx(:'ok_images', :'ok_labels');
RESET ROLE;
DROP ROLE regress_mlcnn_plain;
DROP ROLE regress_mlcnn_reader;

-- the declared labels
SELECT provolatile, proparallel, proisstrict, proretset
FROM pg_proc WHERE oid = 'load_idx(text, text)'::regprocedure;
