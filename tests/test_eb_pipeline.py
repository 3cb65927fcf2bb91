"""The eclipsing-binary workflow on simulated SPOC light curves: features, their store, evaluation."""

from __future__ import annotations

import numpy as np

from binarycat.catalog.arrays import orphan_shards
from binarycat.eb_pipeline import lightcurve_features
from binarycat.ingest.labels import import_eb_labels
from binarycat.ingest.lightcurves import ingest_lightcurves
from binarycat.ingest.simulate_lightcurves import field_targets, simulate_lightcurves
from binarycat.ingest.tess_fits import TessLightCurve
from binarycat.model.periodogram import CALNET_PERIODS


def test_features_are_prepared_once_and_read_back_identical(catalog):
    sim = simulate_lightcurves(field_targets(6, seed=4), seed=4, eb_fraction=0.5)
    ingest_lightcurves(catalog, sim.lightcurves)
    import_eb_labels(catalog, sim.truth.copy()[:4], labeller="simulator")
    first, failures = lightcurve_features(catalog)
    assert len(first) == 6 and failures.items == []
    assert first.lc.shape == (6, 4000) and first.periodogram.shape == (6, 1000)
    assert np.all((first.lc >= 0) & (first.lc <= 1)) and np.allclose(first.periodogram.max(axis=1), 1)
    assert set(first.best_period) <= set(CALNET_PERIODS)
    assert sorted(first.label.tolist()) == sorted([-1, -1] + [int(v) for v in sim.truth["label"][:4]])
    assert catalog.table_count("lightcurve_features") == 6
    labelled, _ = lightcurve_features(catalog, labelled_only=True)
    assert len(labelled) == 4 and catalog.table_count("lightcurve_features") == 6
    again, _ = lightcurve_features(catalog)
    np.testing.assert_array_equal(again.lc, first.lc)
    np.testing.assert_array_equal(again.periodogram, first.periodogram)
    assert again.lightcurve_id == first.lightcurve_id
    assert orphan_shards(catalog) == []


def test_a_curve_too_short_after_cleaning_is_reported_not_fatal(catalog):
    sim = simulate_lightcurves(field_targets(2, seed=5), seed=5)
    good = sim.lightcurves[0]
    # 2,500 good cadences, but in segments of 1,250 (a 1-day hole in the middle): none is usable
    n = 2500
    t = 1500 + np.arange(n) * (2 / 1440)
    t[n // 2:] += 1.0
    chopped = TessLightCurve(good.tic_id + 7, good.sector, good.ra, good.dec, t, np.ones(n) * 100.0,
                             np.ones(n), np.zeros(n, int))
    ingest_lightcurves(catalog, [good, chopped])
    feats, failures = lightcurve_features(catalog)
    assert feats.lightcurve_id == [f"TIC{good.tic_id}-s{good.sector:04d}"]
    assert len(failures.items) == 1 and failures.items[0][0] == f"TIC{good.tic_id + 7}-s{good.sector:04d}"
