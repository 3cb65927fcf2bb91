-- Per survey: stamps stored, sources with a stamp, labels by class, predictions and flags
-- from the latest model per source, with the survey's PSF FWHM and aperture for context.
SELECT v.name AS survey, v.fwhm_arcsec, v.aperture_m,
       coalesce(st.n_stamps, 0) AS n_stamps, coalesce(st.n_sources, 0) AS n_sources,
       coalesce(l.n_label_binary, 0) AS n_label_binary, coalesce(l.n_label_single, 0) AS n_label_single,
       coalesce(f.n_predicted, 0) AS n_predicted, coalesce(f.n_flagged, 0) AS n_flagged
FROM surveys v
LEFT JOIN (SELECT survey, count(*) AS n_stamps, count(DISTINCT source_id) AS n_sources
           FROM stamps GROUP BY survey) st ON st.survey = v.name
LEFT JOIN (SELECT survey, count(*) FILTER (WHERE label = 1) AS n_label_binary,
                  count(*) FILTER (WHERE label = 0) AS n_label_single
           FROM latest_labels GROUP BY survey) l ON l.survey = v.name
LEFT JOIN (SELECT survey, count(*) AS n_predicted, count(*) FILTER (WHERE flag) AS n_flagged
           FROM binary_flags GROUP BY survey) f ON f.survey = v.name
WHERE coalesce(st.n_stamps, 0) > 0 OR coalesce(f.n_predicted, 0) > 0
ORDER BY v.fwhm_arcsec
