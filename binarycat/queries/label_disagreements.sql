-- Labels that the latest prediction contradicts, most confident disagreement first: the
-- stamps worth looking at again. The latest label per source and survey (latest_labels)
-- against the latest prediction (binary_flags). `split` is the source's split for the
-- predicting model: train (it was trained on the source), validation (it picked its epoch by it),
-- test, or NULL (the model recorded no split for the source, so never saw its label).
SELECT f.source_id, f.survey, l.label, f.flag, f.p_binary, l.labeller, f.model_id,
       f.stamp_id, sp.split
FROM binary_flags f
JOIN latest_labels l USING (source_id, survey)
LEFT JOIN splits sp ON sp.model_id = f.model_id AND sp.source_id = f.source_id
WHERE l.label <> f.flag::INTEGER
ORDER BY abs(f.p_binary - l.label) DESC, f.source_id, f.survey
