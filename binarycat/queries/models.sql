-- The trained models, newest first: kind, surveys, when, the sources in each split, the best
-- validation epoch and the test macro-F1 stored when it was trained, and how many stamp sets
-- `binarycat evaluate` has scored it on (in metrics.evaluation). Move one to another catalogue with
-- `binarycat models export ID FILE` and `binarycat models import FILE`.
WITH n AS (
    SELECT model_id, count(*) FILTER (WHERE split = 'train') AS n_train,
           count(*) FILTER (WHERE split = 'validation') AS n_validation,
           count(*) FILTER (WHERE split = 'test') AS n_test
    FROM (SELECT model_id, split FROM splits UNION ALL SELECT model_id, split FROM eb_splits)
    GROUP BY model_id
)
SELECT m.model_id, m.kind, array_to_string(m.surveys, ',') AS surveys,
       CAST(m.created_at AS TIMESTAMP(0)) AS created_at,
       coalesce(n.n_train, 0) AS n_train, coalesce(n.n_validation, 0) AS n_validation,
       coalesce(n.n_test, 0) AS n_test,
       CAST(json_extract(m.metrics, '$.best_epoch') AS INTEGER) AS best_epoch,
       round(CAST(json_extract(m.metrics, '$.test."macro avg".f1') AS DOUBLE), 4) AS test_macro_f1,
       coalesce(json_array_length(json_keys(m.metrics, '$.evaluation')), 0) AS n_evaluations
FROM models m
LEFT JOIN n USING (model_id)
ORDER BY m.created_at DESC, m.model_id
