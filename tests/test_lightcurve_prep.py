"""CALNet light-curve preprocessing: each step on hand-computed cases, then the whole recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from binarycat.errors import BinarycatError, LightCurveTooShortError
from binarycat.ingest.lightcurve_prep import (
    PREPROCESSING_VERSION, allocate_samples, describe, drop_brightest, good_points, minmax_normalise,
    prepare_many, preprocess_lightcurve, resample_minmax, robust_spline, spline_knots, split_segments,
)

CADENCE = 2.0 / 1440.0


def eclipse(t, period=2.7, t0=0.7, duration=2 / 24, depth=0.01):
    """Unit flux with eclipses of ``duration`` (first to last contact) and ``depth``.

    The profile ``(1 - x**2)**1.5`` starts smoothly at contact, like the overlap of two discs.
    """
    x = np.abs(((t - t0 + period / 2) % period) - period / 2) / (duration / 2)
    return 1.0 - depth * np.clip(1.0 - x**2, 0.0, None) ** 1.5


def tess_sector(seed=0, n=19_584):
    """A TESS-like sector: 2-min cadence, 1-d mid-sector gap (NaN flux), flagged points, spikes."""
    rng = np.random.default_rng(seed)
    time = 1600.0 + np.arange(n) * CADENCE
    flux_err = np.full(n, 1e-3) * 12_000
    flux = 12_000 * (eclipse(time - 1600.0, depth=0.2) + 1e-3 * rng.standard_normal(n))
    gap = (time > 1613.2) & (time < 1614.2)
    flux[gap] = np.nan
    quality = np.zeros(n, dtype=np.int32)
    quality[rng.choice(n, 300, replace=False)] = 128          # manual exclude
    spikes = rng.choice(n, 40, replace=False)
    flux[spikes] *= 1.05                                       # cosmic rays / flares, above baseline
    return time, flux, quality, flux_err


def test_good_points_masks_quality_and_non_finite():
    time = np.array([0.0, 1.0, np.nan, 3.0, 4.0, 5.0])
    flux = np.array([1.0, np.inf, 1.0, 1.0, np.nan, 1.0])
    quality = np.array([0, 0, 0, 4, 0, 0])
    np.testing.assert_array_equal(good_points(time, flux, quality), [True, False, False, False, False, True])
    np.testing.assert_array_equal(good_points(time, flux), [True, False, False, True, False, True])
    with pytest.raises(ValueError):
        good_points(time, flux[:3])


def test_split_segments_at_gaps_over_the_limit():
    time = np.array([0.0, 0.1, 0.2, 1.0, 1.1, 1.85, 3.0])
    # steps: 0.1 0.1 0.8 0.1 0.75 1.15 -> cuts after index 2 (0.8) and 5 (1.15); 0.75 itself is no gap
    assert split_segments(time, 0.75) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert split_segments(time, 2.0) == [slice(0, 7)]
    assert split_segments(np.array([])) == []
    with pytest.raises(ValueError):
        split_segments(np.array([0.0, 2.0, 1.0]))


def test_drop_brightest_removes_exactly_the_top_percent():
    flux = np.random.default_rng(0).permutation(np.arange(300.0))
    keep = drop_brightest(flux, 0.01)
    assert keep.sum() == 297
    assert sorted(flux[~keep]) == [297.0, 298.0, 299.0]
    assert drop_brightest(np.arange(99.0)).all()          # floor(0.99) = 0 points dropped
    ties = np.array([1.0, 5.0, 5.0, 2.0] * 25)
    assert np.flatnonzero(~drop_brightest(ties)).tolist() == [98]   # the later of the tied maxima


def test_spline_knots_stay_out_of_gaps():
    time = np.r_[np.arange(0, 2, CADENCE), np.arange(2.5, 4, CADENCE)]
    knots = spline_knots(time, 0.02)
    assert np.all((knots > time[0]) & (knots < time[-1])) and np.all(np.diff(knots) > 0)
    counts = np.diff(np.searchsorted(time, np.r_[time[0], knots, np.inf]))
    assert counts.min() >= 4
    assert np.sum((knots > 2.0) & (knots < 2.5)) <= 1      # one knot may close the gap, none inside it


def test_robust_spline_follows_a_smooth_curve_and_rejects_an_outlier():
    rng = np.random.default_rng(1)
    time = np.arange(0, 5, CADENCE)
    truth = 1 + 0.01 * np.sin(2 * np.pi * time / 1.3)
    flux = truth + 1e-3 * rng.standard_normal(time.size)
    flux[1000] -= 0.05                                     # a 50-sigma dip of one point
    spline, kept = robust_spline(time, flux)
    assert not kept[1000]
    assert kept.mean() > 0.99
    assert np.sqrt(np.mean((spline(time) - truth) ** 2)) < 4e-4   # noise 1e-3, ~14 points per knot
    assert abs(spline(time[1000]) - truth[1000]) < 1.5e-3


def test_a_two_hour_eclipse_survives_the_spline():
    rng = np.random.default_rng(2)
    time = np.arange(0, 12.5, CADENCE)
    flux = eclipse(time, period=0.9, t0=0.3) + 1e-3 * rng.standard_normal(time.size)
    mids = 0.3 + 0.9 * np.arange(13)
    spline, kept = robust_spline(time, flux)
    assert np.mean(1 - spline(mids)) / 0.01 > 0.9
    in_eclipse = eclipse(time, period=0.9, t0=0.3) < 1
    assert kept[in_eclipse].mean() > 0.95
    # the trade-off: knots every 0.5 d smooth the eclipse away (and reject its points)
    wide, wide_kept = robust_spline(time, flux, knot_spacing_days=0.5)
    assert np.mean(1 - wide(mids)) / 0.01 < 0.3
    assert wide_kept[in_eclipse].mean() < 0.5


def test_resample_minmax_on_a_linear_ramp():
    ramp = lambda t: 3.0 * t - 2.0                                            # noqa: E731
    time, flux = resample_minmax([ramp], [(0.0, 10.0)], n_out=11)
    np.testing.assert_allclose(time, np.arange(11.0))
    np.testing.assert_allclose(flux, np.linspace(0, 1, 11), atol=1e-7)
    assert flux.dtype == np.float32
    # two segments 10 d and 30 d long share 4000 samples 1:3; the gap between them is dropped
    time, flux = resample_minmax([ramp, ramp], [(0.0, 10.0), (20.0, 50.0)], n_out=4000)
    assert np.sum(time <= 10) == 1000 and np.sum(time >= 20) == 3000
    assert flux[0] == 0.0 and flux[-1] == 1.0 and np.all(np.diff(flux) > 0)
    assert flux[999] == pytest.approx(30 / 150) and flux[1000] == pytest.approx(60 / 150)   # (v + 2) / 150


def test_allocate_samples_and_minmax():
    assert allocate_samples([1.0, 1.0, 1.0], 10).tolist() == [4, 3, 3]
    assert allocate_samples([100.0, 0.0], 10).tolist() == [8, 2]
    assert allocate_samples([2.0, 6.0], 4000).sum() == 4000
    assert np.all(minmax_normalise(np.full(5, 2.0)) == 0)
    np.testing.assert_allclose(minmax_normalise([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])


def test_too_short_raises_one_sentence():
    time = np.arange(3000) * CADENCE
    time[1500:] += 1.0                                     # two stretches of 1,500 points
    with pytest.raises(LightCurveTooShortError) as err:
        preprocess_lightcurve(time, np.ones(3000))
    assert isinstance(err.value, BinarycatError)
    msg = str(err.value)
    assert msg == ("The light curve is too short: its longest stretch without a gap over 0.75 d has "
                   "1500 good points, fewer than the 2000 needed.")


def test_full_tess_like_sector():
    time, flux, quality, flux_err = tess_sector()
    prep = preprocess_lightcurve(time, flux, quality, flux_err)
    assert prep.flux.shape == (4000,) and prep.flux.dtype == np.float32
    assert prep.flux.min() == 0.0 and prep.flux.max() == 1.0
    assert prep.time.shape == (4000,) and np.all(np.diff(prep.time) > 0)
    assert prep.n_good == np.sum(good_points(time, flux, quality))
    assert len(prep.segments) == 2 and prep.segments[0][1] <= 1613.2 < 1614.2 <= prep.segments[1][0]
    # the eclipses (20 % deep) are the minima of the curve and the baseline is near its top:
    # neither the spikes nor the eclipse cut by the start of the second orbit set the maximum
    model = eclipse(prep.time - 1600.0, depth=0.2)
    assert prep.flux[model < 0.9].min() < 0.05
    assert np.median(prep.flux[model == 1.0]) > 0.95
    t, y, dy = prep.periodogram_input
    assert t.size == y.size == dy.size == prep.points_inlier.size > 0.98 * prep.n_good
    good = good_points(time, flux, quality)      # the clipping does not thin out the eclipses
    assert np.sum(eclipse(t - 1600.0, depth=0.2) < 1) >= 0.99 * np.sum(eclipse(time[good] - 1600.0, depth=0.2) < 1)
    assert np.all(np.isfinite(y)) and np.median(y) == pytest.approx(1.0, abs=1e-3)
    assert dy[0] == pytest.approx(1e-3, rel=0.01)


def test_prepare_many_collects_failures_and_describe():
    time, flux, quality, flux_err = tess_sector(seed=3)
    items = [(time, flux, quality, flux_err), (time[:100], flux[:100], None, None)]
    lc, inputs, failures = prepare_many(items)
    assert lc.shape == (1, 4000) and lc.dtype == np.float32 and len(inputs) == 1
    assert list(failures) == [1] and "too short" in failures[1]
    info = json.loads(json.dumps(describe()))
    assert info["version"] == PREPROCESSING_VERSION == "calnet-prep-v1"
    assert info["n_out"] == 4000 and info["max_gap_days"] == 0.75
