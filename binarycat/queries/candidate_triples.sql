-- Candidate triples: sources flagged as a visual binary (a resolved pair within 2.5") in at
-- least min_surveys imaging surveys and as an eclipsing binary in TESS, by the latest
-- predictions (binary_flags). Gives the imaging surveys that flag the pair (visual_in, A-Z),
-- the highest imaging p_binary (p_visual), the TESS probability (p_eclipsing), the light curve
-- behind it (TIC id, sector, GLS period of the highest peak) and whether the TESS pixel holds
-- more than one catalogue source (blended: the eclipses may belong to a neighbour).
-- Highest p_eclipsing first, then source_id.
-- param min_surveys: imaging surveys that must flag the pair, an integer (default 1)
WITH params AS (
    SELECT greatest(1, CASE WHEN getvariable('min_surveys') IS NULL THEN 1
                ELSE coalesce(TRY_CAST(getvariable('min_surveys') AS INTEGER),
                              error('Parameter min_surveys must be an integer, got '
                                    || getvariable('min_surveys')::VARCHAR))
           END) AS min_surveys
),
visual AS (
    SELECT source_id, count(*) AS n_visual,
           array_to_string(list_sort(list(survey)), ',') AS visual_in,
           max(p_binary) AS p_visual
    FROM binary_flags
    WHERE flag AND survey <> 'TESS'
    GROUP BY source_id
),
eclipsing AS (
    SELECT source_id, p_binary AS p_eclipsing, stamp_id AS lightcurve_id
    FROM binary_flags
    WHERE flag AND survey = 'TESS'
)
SELECT s.source_id, s.ra, s.dec, v.n_visual, v.visual_in, v.p_visual, e.p_eclipsing,
       l.tic_id, l.sector, p.best_period_days, l.blended
FROM visual v
JOIN eclipsing e USING (source_id)
JOIN sources s USING (source_id)
LEFT JOIN lightcurves l ON l.lightcurve_id = e.lightcurve_id
LEFT JOIN binary_flags f ON f.source_id = e.source_id AND f.survey = 'TESS'
LEFT JOIN eb_predictions p ON p.lightcurve_id = e.lightcurve_id AND p.model_id = f.model_id
WHERE v.n_visual >= (SELECT min_surveys FROM params)
ORDER BY e.p_eclipsing DESC, s.source_id
