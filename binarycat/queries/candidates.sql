-- Sources flagged as a visual binary in at least one survey, by the latest prediction per
-- source and survey (the binary_flags view). One p_binary column per survey that has
-- predictions (p_<survey>, NULL where the source has no prediction in that survey), how many
-- surveys flag it, which (binary_in, comma-separated, A-Z), and the position.
-- Most flagging surveys first, then source_id.
-- param min_surveys: flag in at least this many surveys, an integer; below 1 counts as 1 (default 1)
WITH params AS (
    SELECT CASE WHEN getvariable('min_surveys') IS NULL THEN 1
                ELSE coalesce(TRY_CAST(getvariable('min_surveys') AS INTEGER),
                              error('Parameter min_surveys must be an integer, got '
                                    || getvariable('min_surveys')::VARCHAR))
           END AS min_surveys
),
-- Speed (benchmarks/bench_candidates_query.py): binary_flags, a window over every
-- prediction, is computed once, here, rather than once per use; only flagged rows are
-- grouped, and the PIVOT sees only the flagged sources' rows. The PIVOT's column list comes
-- from `predictions` because a PIVOT's IN subquery cannot see this query's CTEs.
latest AS MATERIALIZED (
    SELECT source_id, survey, flag, p_binary FROM binary_flags
),
flagged AS (
    SELECT source_id, count(*) AS n_surveys_binary, list_sort(list(survey)) AS binary_in
    FROM latest
    WHERE flag
    GROUP BY source_id
    HAVING count(*) >= (SELECT min_surveys FROM params)
)
SELECT s.source_id, s.ra, s.dec, f.n_surveys_binary, array_to_string(f.binary_in, ',') AS binary_in,
       p.* EXCLUDE (source_id)
FROM flagged f
JOIN sources s USING (source_id)
JOIN (PIVOT (SELECT source_id, 'p_' || survey AS p_column, p_binary FROM latest
             WHERE source_id IN (SELECT source_id FROM flagged))
      ON p_column IN (SELECT DISTINCT 'p_' || survey FROM predictions ORDER BY 1)
      USING first(p_binary) GROUP BY source_id) p USING (source_id)
ORDER BY f.n_surveys_binary DESC, s.source_id
