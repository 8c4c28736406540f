-- decode_image: PNG and JPEG to pixels. The Pillow and OpenCV comparisons
-- and the bad-image matrix are in test/images/decode.py; here: the
-- function's contract from SQL on two 2x2 PNGs.
\set SHOW_CONTEXT never
\set grey '\\x89504e470d0a1a0a0000000d494844520000000200000002080000000057dd52f80000000e49444154789c6360706068f80f00030501c04e335be90000000049454e44ae426082'
\set rgb '\\x89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a730000001649444154789c63f8cfc0c0f09f819181e1ffffff0c001ef604fd09ed343e0000000049454e44ae426082'
-- the pixels 0 64 / 128 255 as they are, replicated to RGB, and their mean
SELECT decode_image(:'grey', 2, 2, 1) AS grey,
       decode_image(:'grey', 2, 2, 3) AS as_rgb,
       decode_image(:'grey', 1, 1, 1) AS mean;
-- red green / blue white: interleaved RGB, and BT.601 luma (76, 150, 29, 255)
SELECT decode_image(:'rgb', 2, 2, 3) AS rgb, decode_image(:'rgb', 2, 2, 1) AS luma;
-- enlarging is bilinear: the corners stay, the middle blends
SELECT get_byte(decode_image(:'grey', 4, 4, 1), 0) AS corner,
       get_byte(decode_image(:'grey', 4, 4, 1), 15) AS far_corner;
-- the result feeds every mlcnn function
SELECT length(decode_image(:'rgb', 28, 28, 1)) AS bytes_for_28x28;

-- errors: bad arguments, not an image, a truncated one; NULL gives NULL
SELECT decode_image(:'grey', 0, 2, 1);
SELECT decode_image(:'grey', 2, 5000, 1);
SELECT decode_image(:'grey', 2, 2, 7);
SELECT decode_image('\x00010203'::bytea, 2, 2, 1);
SELECT decode_image(substring(:'grey'::bytea FROM 1 FOR 40), 2, 2, 1);
SET mlcnn.max_image_pixels = 3;
SELECT decode_image(:'grey', 2, 2, 1);
RESET mlcnn.max_image_pixels;
SELECT decode_image(NULL, 2, 2, 1) IS NULL AS null_in_null_out;
SELECT provolatile, proisstrict, proparallel, obj_description(oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc WHERE proname = 'decode_image';

-- load_images: a folder of class folders (its files are in test/images/decode.py)
SELECT count(*) FROM load_images('/nonexistent/mlcnn/folder');
SELECT count(*) FROM load_images('PG_VERSION');
SELECT provolatile, proisstrict, proparallel, prorows FROM pg_proc WHERE proname = 'load_images';
