-- pgbench (make stress): one prediction of a random test row, a new call
-- site per statement (the model is decoded anew every time), checked
-- against the single-session reference for that row.
\set id random(0, 499)
SELECT 1 / (predict(m.blob, t.pixels) = r.pred)::int
FROM st_model m, st_test t, st_ref_rows r
WHERE m.name = 'base' AND t.id = :id AND r.id = :id;
