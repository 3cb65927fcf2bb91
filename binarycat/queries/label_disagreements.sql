-- Labels that the latest prediction contradicts, most confident disagreement first:
-- the stamps worth looking at again.
SELECT f.source_id, f.survey, l.label, f.flag, f.p_binary, l.labeller, f.model_id
FROM binary_flags f
JOIN latest_labels l USING (source_id, survey)
WHERE l.label <> f.flag::INTEGER
ORDER BY abs(f.p_binary - l.label) DESC, f.source_id, f.survey
