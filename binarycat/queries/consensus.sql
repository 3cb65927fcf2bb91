-- Sources that at least k of the surveys covering them flag as a visual binary, by the latest
-- prediction per source and survey. A survey covers a source when the catalogue holds a stamp
-- of that source in that survey (the `coverage` CTE, the one place that says so). Gives how
-- many surveys cover the source (n_covering, with or without a prediction), how many flag it
-- (n_binary), n_binary / n_covering, the flagging surveys (binary_in, comma-separated, A-Z) and
-- the mean latest p_binary over the covering surveys that have a prediction.
-- Most flags first, then source_id.
-- param k: least number of covering surveys that flag the source, an integer (default 2)
WITH params AS (
    SELECT CASE WHEN getvariable('k') IS NULL THEN 2
                ELSE coalesce(TRY_CAST(getvariable('k') AS INTEGER),
                              error('Parameter k must be an integer, got ' || getvariable('k')::VARCHAR))
           END AS k
),
coverage AS (
    SELECT DISTINCT source_id, survey FROM stamps
),
latest AS (
    SELECT source_id, survey, flag, p_binary FROM binary_flags
),
per_source AS (
    SELECT c.source_id,
           count(*) AS n_covering,
           count(*) FILTER (WHERE f.flag) AS n_binary,
           list(c.survey ORDER BY c.survey) FILTER (WHERE f.flag) AS binary_in,
           avg(f.p_binary) AS mean_p_binary
    FROM coverage c
    LEFT JOIN latest f USING (source_id, survey)
    GROUP BY c.source_id
)
SELECT s.source_id, s.ra, s.dec, p.n_covering, p.n_binary,
       p.n_binary / p.n_covering AS fraction_binary,
       coalesce(array_to_string(p.binary_in, ','), '') AS binary_in,
       p.mean_p_binary
FROM per_source p
JOIN sources s USING (source_id)
WHERE p.n_binary >= (SELECT k FROM params)
ORDER BY p.n_binary DESC, s.source_id
