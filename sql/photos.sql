-- Real photographs, end to end in SQL: a folder of class folders of PNG and
-- JPEG crops of four photographs (test/images/photos, public domain and CC0,
-- see its LICENSE) is read by load_images, decoded and resized to 32x32 RGB
-- by decode_image, trained on with augmentation, and the held-out crops
-- (cut from a part of each photograph that no training crop overlaps) are
-- classified by predict and evaluate. No step outside the database. The
-- outputs are counts and properties, never numbers copied from a run: the
-- held-out accuracy must be at least twice chance.
\set SHOW_CONTEXT never
CREATE TEMP TABLE photos AS
  SELECT 'train' AS split, * FROM load_images('mlcnn_test_data/photos/train')
  UNION ALL
  SELECT 'test', * FROM load_images('mlcnn_test_data/photos/test');
SELECT split, label, count(*) AS images,
       count(*) FILTER (WHERE path LIKE '%.jpg') AS jpeg, count(*) FILTER (WHERE path LIKE '%.png') AS png
FROM photos GROUP BY 1, 2 ORDER BY 1 DESC, 2;
-- class names to numbers, in name order
CREATE TEMP TABLE classes AS
  SELECT label, (row_number() OVER (ORDER BY label) - 1)::int AS class FROM (SELECT DISTINCT label FROM photos) l;
-- the sources are 40x40 to 120x120: area averaging shrinks them, and every result is 32x32x3
CREATE TEMP TABLE images AS
  SELECT split, path, class, decode_image(image, 32, 32, 3) AS pixels FROM photos JOIN classes USING (label);
SELECT count(*) AS images, min(length(pixels)) = 3072 AND max(length(pixels)) = 3072 AS all_32x32x3 FROM images;

-- a colour model; the input shape (32x32x3) is inferred from the 3,072 bytes
CREATE TEMP TABLE photo_model AS
  SELECT train_conv2d(pixels, class,
         '{"classes": 4, "layers": "conv(16,5,1,same) relu maxpool(4) conv(32,3,1,same) relu globalavgpool dense(4)",
           "epochs": 40, "batch_size": 8, "learning_rate": 0.01, "normalize": "zscore",
           "augment": {"hflip": true, "shift": 4}}') AS model
  FROM images WHERE split = 'train';
SELECT model_info(model)->'input' AS input, model_info(model)->'options'->'augment_hflip' AS hflip,
       model_info(model)->'options'->'augment_shift' AS shift, model_info(model)->'rows_trained' AS rows_trained
FROM photo_model;
-- the held-out photographs: at least 12 of 24 right (chance is 6), and evaluate agrees with predict
SELECT count(*) AS held_out, count(*) FILTER (WHERE predict(model, pixels) = class) >= 12 AS twice_chance,
       count(*) FILTER (WHERE predict(model, pixels) = class) =
         (SELECT (evaluate(model, pixels, class)->>'correct')::int FROM images, photo_model WHERE split = 'test')
         AS evaluate_agrees
FROM images, photo_model WHERE split = 'test';
-- and the training photographs are learnt (at least 56 of 64)
SELECT (evaluate(model, pixels, class)->>'correct')::int >= 56 AS learnt FROM images, photo_model WHERE split = 'train';
-- the same decode in the query that predicts, by class name
SELECT count(*) AS predicted, count(DISTINCT predicted) > 1 AS several_classes
FROM (SELECT c.label AS predicted
      FROM photos p, photo_model m, classes c
      WHERE p.split = 'test' AND c.class = predict(m.model, decode_image(p.image, 32, 32, 3))) s;
