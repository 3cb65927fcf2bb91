-- Sources flagged as a binary in at least one survey (a visual binary in an imaging survey,
-- an eclipsing binary in TESS), by the latest prediction per source and survey
-- (binary_flags, summed up per source in source_flags). One p_binary column per survey that has
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
-- Speed (benchmarks/bench_candidates_query.py): source_flags holds one row per source with
-- its flag count and a map survey -> p_binary, kept at write time; only the candidates' map
-- entries are pivoted.
candidates AS MATERIALIZED (
    SELECT source_id, ra, dec, n_surveys_binary, binary_in, p_binary
    FROM source_flags
    WHERE n_surveys_binary >= (SELECT min_surveys FROM params)
),
probabilities AS (
    PIVOT (SELECT source_id, 'p_' || unnest(map_keys(p_binary)) AS p_column,
                  unnest(map_values(p_binary)) AS p
           FROM candidates)
    ON p_column IN (SELECT DISTINCT 'p_' || survey FROM binary_flags ORDER BY 1)
    USING first(p) GROUP BY source_id
)
SELECT c.source_id, c.ra, c.dec, c.n_surveys_binary, c.binary_in, p.* EXCLUDE (source_id)
FROM candidates c
JOIN probabilities p USING (source_id)
ORDER BY c.n_surveys_binary DESC, c.source_id
