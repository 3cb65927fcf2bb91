"""The classical pair-fit baseline on real simulated stamps (no mocks)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS

from binarycat.errors import BinarycatError
from binarycat.ingest.fits_io import FitsImage, read_image
from binarycat.ingest.simulate import read_truth, render_stamp, simulate_sky
from binarycat.ingest.stacking import group_by_prefix, stack_images
from binarycat.ingest.surveys import get_survey
from binarycat.model import baseline
from binarycat.model.baseline import (BASELINE_NAME, BASELINE_NAMES, PairBaseline, PairFit, baseline_name, fit_pair,
                                      pair_scores)
from binarycat.model.metrics import classification_report


def _source(sid="00007", mag_r=16.0, sep=0.0, ratio=0.0, pa=40.0, field_sep=0.0, field_ratio=0.0):
    """A row like `simulate_sources` writes: a binary when ``sep > 0``."""
    return {
        "source_id": sid, "ra": 83.82, "dec": -5.39, "mag_r": mag_r, "color": 2.0,
        "is_binary": sep > 0, "separation_arcsec": sep, "position_angle_deg": pa,
        "flux_ratio": ratio, "has_field_star": field_sep > 0,
        "field_separation_arcsec": field_sep, "field_position_angle_deg": 200.0,
        "field_flux_ratio": field_ratio, "field_color": 2.0,
    }


def _stack(source, survey, **render_kw):
    """Render every filter of ``survey`` and stack them the way the ingest does."""
    s = get_survey(survey)
    images = []
    for f in s.filter_names:
        data, header, _ = render_stamp(source, s, f, seed=5, **render_kw)
        images.append(FitsImage(Path(f"{source['source_id']}_{s.name}_{f}.fits"), data,
                                WCS(header), header))
    return stack_images(images)[0]


def _fit(image, survey, profile="gaussian"):
    s = get_survey(survey)
    return fit_pair(image, s.pixel_scale_arcsec, s.fwhm_arcsec, profile)


@pytest.mark.parametrize("survey", ["PanSTARRS", "HST"])
def test_single_star_scores_low_even_with_a_field_star(survey):
    for mag in (13.0, 18.0):
        fit = _fit(_stack(_source(mag_r=mag, field_sep=4.0, field_ratio=0.8), survey), survey)
        assert isinstance(fit, PairFit)
        assert 0.0 <= fit.score < 8.0, (mag, fit)


@pytest.mark.parametrize("survey, sep", [("PanSTARRS", 2.0), ("SDSS9", 2.2), ("HST", 0.24)])
def test_resolved_equal_pair_scores_high_and_is_measured(survey, sep):
    fit = _fit(_stack(_source(mag_r=16.0, sep=sep, ratio=0.9), survey), survey)
    assert fit.score > 50.0
    assert fit.separation_arcsec == pytest.approx(sep, rel=0.1)
    assert fit.flux_ratio == pytest.approx(0.9, abs=0.1)


def test_pair_closer_than_the_fwhm_is_not_a_resolved_pair():
    # 0.6" in Pan-STARRS (FWHM 1.1"): bright and obviously two stars to a fit, but not resolved.
    fit = _fit(_stack(_source(mag_r=14.0, sep=0.6, ratio=0.8), "PanSTARRS"), "PanSTARRS")
    assert fit.score == 0.0
    assert fit.separation_arcsec == pytest.approx(0.6, rel=0.2)


def test_nan_pixels_are_ignored():
    image = _stack(_source(mag_r=16.0, sep=1.8, ratio=0.7), "PanSTARRS")
    clean = _fit(image, "PanSTARRS")
    holed = image.copy()
    holed[:, 5] = np.nan  # a bad column, inside the 3" circle
    holed[19, 19] = np.nan  # the centre pixel
    holed[:3, :] = np.nan  # a missing edge strip
    fit = _fit(holed, "PanSTARRS")
    assert fit.score > 50.0 and np.isfinite(fit.separation_arcsec)
    assert fit.separation_arcsec == pytest.approx(clean.separation_arcsec, abs=0.05)
    nothing = _fit(np.full((40, 40), np.nan, dtype=np.float32), "PanSTARRS")
    assert nothing.score == 0.0 and np.isnan(nothing.separation_arcsec)


def test_large_fine_stamp_is_block_averaged_and_still_measured():
    # 0.05"/px with a 0.4" PSF: a 200x200 stamp that fit_pair bins 2x2 before fitting.
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:200, 0:200] - 99.5
    sigma = 0.4 / 2.3548 / 0.05
    star = lambda dx, dy, f: f * np.exp(-((x - dx) ** 2 + (y - dy) ** 2) / (2 * sigma**2))
    image = star(-8.0, 6.0, 30.0) + star(8.0, -6.0, 15.0) + rng.normal(0, 1, x.shape)
    fit = fit_pair(image, 0.05, 0.4)
    assert fit.score > 50.0
    assert fit.separation_arcsec == pytest.approx(1.0, rel=0.05)
    assert fit.flux_ratio == pytest.approx(0.5, abs=0.05)
    single = fit_pair(star(0.0, 0.0, 30.0) + rng.normal(0, 1, x.shape), 0.05, 0.4)
    assert single.score < 8.0


@pytest.mark.parametrize("survey", ["PanSTARRS", "HST"])
def test_moffat_fit_does_not_take_a_bright_single_with_wings_for_a_pair(survey):
    # A Gaussian cannot follow a beta-2.5 Moffat's wings; the Moffat family can.
    image = _stack(_source(mag_r=13.0), survey, psf="moffat", moffat_beta=2.5)
    gaussian, moffat = _fit(image, survey), _fit(image, survey, "moffat")
    assert moffat.score < 4.0, moffat
    assert gaussian.score > 2.0 * moffat.score + 4.0, (gaussian, moffat)


@pytest.mark.parametrize("psf", ["gaussian", "moffat"])
def test_moffat_fit_measures_a_resolved_pair_of_either_profile(psf):
    image = _stack(_source(mag_r=16.0, sep=2.0, ratio=0.5), "PanSTARRS", psf=psf)
    fit = _fit(image, "PanSTARRS", "moffat")
    assert fit.score > 50.0
    assert fit.separation_arcsec == pytest.approx(2.0, rel=0.05)
    assert fit.flux_ratio == pytest.approx(0.5, abs=0.1)
    single = _fit(_stack(_source(mag_r=16.0), "PanSTARRS", psf=psf), "PanSTARRS", "moffat")
    assert single.score < 8.0


def test_bad_inputs_raise_binarycat_error():
    with pytest.raises(BinarycatError, match="lorentz"):
        fit_pair(np.zeros((10, 10)), 0.25, 1.1, "lorentz")
    with pytest.raises(BinarycatError, match="gaussian, moffat"):
        baseline_name("airy")
    with pytest.raises(BinarycatError):
        fit_pair(np.zeros((3, 10, 10)), 0.25, 1.1)
    with pytest.raises(BinarycatError):
        fit_pair(np.zeros((10, 10)), 0.0, 1.1)
    with pytest.raises(BinarycatError):
        pair_scores([np.zeros((10, 10))] * 2, [0.25, 0.25, 0.25], 1.1)


def test_scores_do_not_depend_on_the_number_of_processes(monkeypatch):
    seps = [0.0 if i % 2 else 0.6 + 0.2 * i for i in range(12)]  # singles, and pairs up to 2.6"
    stamps = [_stack(_source(sid=f"{i:05d}", sep=sep, ratio=0.8 if sep else 0.0), "PanSTARRS")
              for i, sep in enumerate(seps)]
    s = get_survey("PanSTARRS")
    monkeypatch.setattr(baseline, "MIN_STAMPS_PER_WORKER", 4)  # a pool even for these few stamps
    alone = pair_scores(stamps, s.pixel_scale_arcsec, s.fwhm_arcsec, workers=1)
    shared = pair_scores(stamps, s.pixel_scale_arcsec, s.fwhm_arcsec, workers=2)
    assert np.array_equal(alone, shared)
    assert alone[10] > alone[1::2].max()  # the fits really ran: the 2.6" pair beats every single


def test_thresholds_separate_constructed_scores_per_survey():
    rng = np.random.default_rng(0)
    # Survey A: pairs score 20-40, singles 0-10. Survey B: pairs 6-9, singles 0-5.
    scores = np.concatenate([rng.uniform(20, 40, 30), rng.uniform(0, 10, 70),
                             rng.uniform(6, 9, 20), rng.uniform(0, 5, 50)])
    labels = np.array([1] * 30 + [0] * 70 + [1] * 20 + [0] * 50)
    surveys = ["PanSTARRS"] * 100 + ["HST"] * 70
    baseline = PairBaseline.fit(scores, labels, surveys)
    assert set(baseline.thresholds) == {"PanSTARRS", "HST"}
    assert 10.0 <= baseline.thresholds["PanSTARRS"] <= 20.0
    assert 5.0 <= baseline.thresholds["HST"] <= 6.0
    assert (baseline.predict(scores, surveys) == labels).all()
    # A score of 15 is a pair in HST and not in Pan-STARRS.
    assert baseline.predict([15.0, 15.0], ["PanSTARRS", "HST"]).tolist() == [0, 1]


def test_predict_for_an_unknown_survey_raises():
    baseline = PairBaseline({"PanSTARRS": 10.0})
    with pytest.raises(BinarycatError, match="2MASS"):
        baseline.predict([1.0, 20.0], ["PanSTARRS", "2MASS"])
    with pytest.raises(BinarycatError):
        baseline.predict([1.0], ["no-such-survey"])


def test_as_dict_round_trip():
    baseline = PairBaseline({"PanSTARRS": 12.5, "HST": 6.25})
    d = baseline.as_dict()
    assert d["baseline"] == BASELINE_NAME
    again = PairBaseline.from_dict(d)
    assert again == baseline
    assert again.predict([12.0, 13.0, 7.0], ["PanSTARRS", "PanSTARRS", "HST"]).tolist() == [0, 1, 1]
    with pytest.raises(BinarycatError):
        PairBaseline.from_dict({"baseline": "cnn", "thresholds": {}})
    with pytest.raises(BinarycatError):
        PairBaseline.from_dict({"baseline": BASELINE_NAME, "thresholds": {"HST": "high"}})
    moffat = PairBaseline.fit([1.0, 9.0], [0, 1], ["HST", "HST"], name=baseline_name("moffat"))
    assert PairBaseline.from_dict(moffat.as_dict()) == moffat != PairBaseline(moffat.thresholds)
    assert moffat.as_dict()["baseline"] == BASELINE_NAMES["moffat"] != BASELINE_NAME


def test_baseline_beats_chance_on_a_simulated_sky(tmp_path):
    sim = simulate_sky(tmp_path / "sim", n_sources=60, surveys=["PanSTARRS", "HST"], seed=4)
    truth = {(r["source_id"], r["survey"]): int(r["label"]) for r in read_truth(sim.truth_csv)}
    scores, labels, surveys = [], [], []
    for survey in ("PanSTARRS", "HST"):
        s = get_survey(survey)
        groups = group_by_prefix(sorted((tmp_path / "sim" / survey).glob("*.fits")))
        stamps = [stack_images([read_image(p) for p in files])[0] for files in groups.values()]
        scores.extend(pair_scores(stamps, s.pixel_scale_arcsec, s.fwhm_arcsec))
        labels.extend(truth[(prefix.split("_")[0], survey)] for prefix in groups)
        surveys.extend([survey] * len(groups))
    labels = np.array(labels)
    surveys = np.array(surveys)
    baseline = PairBaseline.fit(scores, labels, surveys)
    predicted = baseline.predict(scores, surveys)
    for survey in ("PanSTARRS", "HST"):
        sel = surveys == survey
        assert 0 < labels[sel].sum() < sel.sum(), survey  # both classes present
        f1 = classification_report(labels[sel], predicted[sel])["macro avg"]["f1"]
        assert f1 > 0.6, (survey, f1)
