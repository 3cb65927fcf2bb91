-- Sources flagged as a visual binary in at least one survey, by the latest prediction per
-- source and survey (the binary_flags table). One p_binary column per survey that has
-- predictions (p_<survey>, NULL where the source has no prediction in that survey), how many
-- surveys flag it, which (binary_in, comma-separated, A-Z), and the position.
-- Most flagging surveys first, then source_id.
-- param min_surveys: flag in at least this many surveys, an integer; below 1 counts as 1 (default 1)
WITH params AS (
    SELECT greatest(1, CASE WHEN getvariable('min_surveys') IS NULL THEN 1
                ELSE coalesce(TRY_CAST(getvariable('min_surveys') AS INTEGER),
                              error('Parameter min_surveys must be an integer, got '
                                    || getvariable('min_surveys')::VARCHAR))
           END) AS min_surveys
),
-- Speed (benchmarks/bench_candidates_query.py): the flagged rows are grouped first; the PIVOT
-- then sees only the rows of flagged sources.
flagged AS MATERIALIZED (
    SELECT source_id, count(*) AS n_surveys_binary, list_sort(list(survey)) AS binary_in
    FROM binary_flags
    WHERE flag
    GROUP BY source_id
    HAVING count(*) >= (SELECT min_surveys FROM params)
),
probabilities AS (
    PIVOT (SELECT source_id, ra, dec, 'p_' || survey AS p_column, p_binary
           FROM binary_flags SEMI JOIN flagged USING (source_id))
    ON p_column IN (SELECT DISTINCT 'p_' || survey FROM binary_flags ORDER BY 1)
    USING first(p_binary) GROUP BY source_id, ra, dec
)
SELECT p.source_id, p.ra, p.dec, f.n_surveys_binary, array_to_string(f.binary_in, ',') AS binary_in,
       p.* EXCLUDE (source_id, ra, dec)
FROM flagged f
JOIN probabilities p USING (source_id)
ORDER BY f.n_surveys_binary DESC, p.source_id
