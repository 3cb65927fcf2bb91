-- Physically suspicious flags: a source flagged as a visual binary in survey A although
-- another survey B that covers it, with a strictly sharper PSF (surveys.fwhm_arcsec of B below
-- that of A), says single. A blurrier survey should not resolve a pair that a sharper one does
-- not, so either flag is worth a look. Latest prediction per source and survey; a survey covers
-- a source when the catalogue holds a stamp of it there (the `coverage` CTE); surveys without
-- a known FWHM are left out. One row per (source, A, B); largest FWHM ratio A / B first.
WITH coverage AS (
    SELECT DISTINCT source_id, survey FROM stamps
),
latest AS MATERIALIZED (  -- used twice: compute binary_flags once
    SELECT f.source_id, f.ra, f.dec, f.survey, f.flag, f.p_binary, v.fwhm_arcsec
    FROM binary_flags f
    JOIN coverage c USING (source_id, survey)
    JOIN surveys v ON v.name = f.survey
    WHERE v.fwhm_arcsec IS NOT NULL
)
SELECT b.source_id, b.ra, b.dec,
       b.survey AS binary_survey, b.fwhm_arcsec AS binary_fwhm_arcsec, b.p_binary AS binary_p,
       s.survey AS single_survey, s.fwhm_arcsec AS single_fwhm_arcsec, s.p_binary AS single_p
FROM latest b
JOIN latest s ON s.source_id = b.source_id AND b.flag AND NOT s.flag
             AND b.fwhm_arcsec > s.fwhm_arcsec
ORDER BY b.fwhm_arcsec / s.fwhm_arcsec DESC, b.source_id, b.survey, s.survey
