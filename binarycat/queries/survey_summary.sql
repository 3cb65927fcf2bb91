-- Per survey: stamps stored, sources with a stamp, latest labels by class, and sources with a
-- prediction and flagged as binary by their latest prediction, with the survey's PSF FWHM
-- and aperture for context. Every survey that has stamps, labels or predictions is listed,
-- also one missing from the surveys table (FWHM and aperture NULL then). Sharpest PSF first.
WITH st AS (
    SELECT survey, count(*) AS n_stamps, count(DISTINCT source_id) AS n_sources
    FROM stamps GROUP BY survey
),
l AS (
    SELECT survey, count(*) FILTER (WHERE label = 1) AS n_label_binary,
           count(*) FILTER (WHERE label = 0) AS n_label_single
    FROM latest_labels GROUP BY survey
),
f AS (
    SELECT survey, count(*) AS n_predicted, count(*) FILTER (WHERE flag) AS n_flagged
    FROM binary_flags GROUP BY survey
),
names AS (
    SELECT survey FROM st UNION SELECT survey FROM l UNION SELECT survey FROM f
)
SELECT n.survey, v.fwhm_arcsec, v.aperture_m,
       coalesce(st.n_stamps, 0) AS n_stamps, coalesce(st.n_sources, 0) AS n_sources,
       coalesce(l.n_label_binary, 0) AS n_label_binary, coalesce(l.n_label_single, 0) AS n_label_single,
       coalesce(f.n_predicted, 0) AS n_predicted, coalesce(f.n_flagged, 0) AS n_flagged
FROM names n
LEFT JOIN surveys v ON v.name = n.survey
LEFT JOIN st ON st.survey = n.survey
LEFT JOIN l ON l.survey = n.survey
LEFT JOIN f ON f.survey = n.survey
ORDER BY v.fwhm_arcsec NULLS LAST, n.survey
