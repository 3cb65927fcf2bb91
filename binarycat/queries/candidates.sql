-- Sources flagged as a visual binary in at least one survey.
-- One p_binary column per survey that has predictions (p_<survey>, NULL where that survey
-- has no stamp of the source), how many surveys flag it, and the position.
-- param min_surveys: flag in at least this many surveys (default 1)
WITH flagged AS (
    SELECT source_id, count(*) FILTER (WHERE flag) AS n_surveys_binary,
           list(survey ORDER BY survey) FILTER (WHERE flag) AS binary_in
    FROM binary_flags
    GROUP BY source_id
    HAVING count(*) FILTER (WHERE flag) >= coalesce(TRY_CAST(getvariable('min_surveys') AS INTEGER), 1)
),
probabilities AS (
    PIVOT (SELECT source_id, 'p_' || survey AS survey, p_binary FROM binary_flags)
    ON survey USING first(p_binary) GROUP BY source_id
)
SELECT s.source_id, s.ra, s.dec, f.n_surveys_binary, array_to_string(f.binary_in, ',') AS binary_in,
       p.* EXCLUDE (source_id)
FROM flagged f
JOIN sources s USING (source_id)
JOIN probabilities p USING (source_id)
ORDER BY f.n_surveys_binary DESC, s.source_id
