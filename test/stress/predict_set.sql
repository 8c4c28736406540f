-- pgbench (make stress): one transaction predicts the whole fixed test set
-- (500 rows) with the stored model and fails (division by zero) unless the
-- checksum of the predictions is the single-session reference.
SELECT 1 / (md5(string_agg(predict(m.blob, t.pixels)::text, ',' ORDER BY t.id))
            = (SELECT value FROM st_ref WHERE what = 'predictions'))::int
FROM st_model m, st_test t
WHERE m.name = 'base';
