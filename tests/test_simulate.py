"""Tests for binarycat.ingest.simulate: the Orion-like sky simulator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.ndimage import maximum_filter

from binarycat.errors import BinarycatError, UnknownSurveyError
from binarycat.ingest import simulate as sim
from binarycat.ingest.surveys import get_survey

DEFAULT = ("2MASS", "PanSTARRS", "SDSS9", "HST")


# ------------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """One default simulation, large enough to hold a few wide HST-covered binaries."""
    out = tmp_path_factory.mktemp("sky")
    calls = []
    result = sim.simulate_sky(out, n_sources=120, seed=1, progress=lambda d, t: calls.append((d, t)))
    return result, calls


def _fits_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.fits"))}


def _all_bytes(root: Path) -> dict[str, bytes]:
    files = _fits_files(root)
    files["sources.csv"] = (root / "sources.csv").read_bytes()
    files["truth.csv"] = (root / "truth.csv").read_bytes()
    return files


def _peaks_near_centre(image: np.ndarray, header, radius_arcsec: float, scale: float):
    """Local maxima (3x3) above the sky that are significant, within radius of the centre.

    A peak must rise 10 sky sigmas above the sky and reach 2 % of the brightest pixel.
    Returns a list of (row, col).
    """
    data = image.astype(float) - header["SKYLEV"]
    threshold = max(10.0 * header["SKYSIG"], 0.02 * data.max())
    is_max = (data == maximum_filter(data, size=3, mode="constant", cval=-np.inf)) & (data > threshold)
    rows, cols = np.nonzero(is_max)
    c = (image.shape[0] - 1) / 2.0
    r = np.hypot(rows - c, cols - c) * scale
    return [(int(a), int(b)) for a, b, rr in zip(rows, cols, r) if rr <= radius_arcsec]


def _single(**overrides):
    row = dict(
        source_id="00042", ra=83.82, dec=-5.39, population="cluster", mag_r=16.0, color=3.0,
        is_binary=False, separation_arcsec=0.0, position_angle_deg=0.0, flux_ratio=0.0,
        has_field_star=False, field_separation_arcsec=0.0, field_position_angle_deg=0.0,
        field_flux_ratio=0.0, field_color=0.0,
    )
    row.update(overrides)
    return row


# ------------------------------------------------------------------------------------------
# source list
# ------------------------------------------------------------------------------------------


def test_source_table_columns_and_ranges():
    t = sim.simulate_sources(400, seed=3)
    assert len(t) == 400
    assert list(t["source_id"][:3]) == ["00000", "00001", "00002"]
    assert t["source_id"][399] == "00399"
    assert all(len(s) == 5 for s in t["source_id"])

    assert np.all((t["mag_r"] >= 12) & (t["mag_r"] <= 20))
    # more faint stars than bright ones
    assert np.sum(t["mag_r"] > 18) > 2 * np.sum(t["mag_r"] < 14)
    # red stars: Ks brighter than r
    assert np.all(t["color"] > 0)

    b = np.asarray(t["is_binary"])
    assert 0.4 < b.mean() < 0.6
    sep = np.asarray(t["separation_arcsec"])
    assert np.all((sep[b] >= 0.1) & (sep[b] <= 2.5))
    assert np.all((t["position_angle_deg"][b] >= 0) & (t["position_angle_deg"][b] < 360))
    assert np.all((t["flux_ratio"][b] >= 0.1) & (t["flux_ratio"][b] <= 1.0))
    assert np.all(sep[~b] == 0.0) and np.all(t["flux_ratio"][~b] == 0.0)
    # log-uniform: about as many pairs in [0.1, 0.5] as in [0.5, 2.5]
    n_close, n_wide = np.sum(sep[b] < 0.5), np.sum(sep[b] >= 0.5)
    assert 0.6 < n_close / n_wide < 1.6

    f = np.asarray(t["has_field_star"])
    assert 0.12 < f.mean() < 0.28
    fsep = np.asarray(t["field_separation_arcsec"])
    assert np.all((fsep[f] >= 3.5) & (fsep[f] <= 5.0))
    assert np.all(fsep[~f] == 0.0)


def test_positions_cluster_on_the_onc_and_spread_along_orion_a():
    t = sim.simulate_sources(400, seed=0)
    c = SkyCoord(t["ra"], t["dec"], unit="deg")
    r = c.separation(SkyCoord(sim.ONC_RA_DEG, sim.ONC_DEC_DEG, unit="deg")).deg
    assert 0.05 < np.median(r) < 0.4  # a compact core ...
    assert np.mean(r < 0.3) > 0.5
    cloud = t["population"] == "cloud"
    assert 0.2 < cloud.mean() < 0.3
    # ... and an elongated north-south cloud between Dec -8 and -4
    assert np.all((t["dec"] > -8.01) & (t["dec"] < -3.99))
    assert np.std(t["dec"][cloud]) > 2 * np.std(t["ra"][cloud] * math.cos(math.radians(-5.4)))
    assert t["dec"][cloud].min() < -7.5 and t["dec"][cloud].max() > -4.5


def test_sources_depend_on_seed_only():
    a = sim.simulate_sources(50, seed=11)
    b = sim.simulate_sources(50, seed=11)
    c = sim.simulate_sources(50, seed=12)
    for name in a.colnames:
        assert np.array_equal(a[name], b[name])
    assert not np.array_equal(a["ra"], c["ra"])


@pytest.mark.parametrize("kwargs", [dict(n_sources=-1), dict(seed=-3), dict(binary_fraction=1.5)])
def test_bad_arguments_are_user_errors(kwargs):
    with pytest.raises(BinarycatError):
        sim.simulate_sources(**kwargs)


def test_binary_fraction_changes_membership_only():
    none = sim.simulate_sources(200, seed=2, binary_fraction=0.0)
    every = sim.simulate_sources(200, seed=2, binary_fraction=1.0)
    assert not none["is_binary"].any() and every["is_binary"].all()
    assert np.array_equal(none["ra"], every["ra"]) and np.array_equal(none["mag_r"], every["mag_r"])


# ------------------------------------------------------------------------------------------
# footprints
# ------------------------------------------------------------------------------------------


def test_coverage_fractions_of_the_default_surveys():
    for seed in (0, 1, 2):
        t = sim.simulate_sources(300, seed=seed)
        frac = {s: float(sim.footprint_covers(s, t["ra"], t["dec"]).mean()) for s in DEFAULT + ("JWST",)}
        assert frac["2MASS"] == 1.0
        assert frac["PanSTARRS"] == 1.0
        assert 0.70 <= frac["SDSS9"] <= 0.85, frac
        assert 0.50 <= frac["HST"] <= 0.65, frac
        assert 0.0 < frac["JWST"] < frac["HST"], frac


def test_footprint_is_a_function_of_position():
    assert sim.footprint_covers("hubble", 83.82, -5.39).shape == ()
    assert bool(sim.footprint_covers("hubble", 83.82, -5.39))
    assert not bool(sim.footprint_covers("HST", 200.0, -60.0))
    assert not bool(sim.footprint_covers("ps1", 200.0, -60.0))  # Dec < -30
    assert bool(sim.footprint_covers("ps1", 200.0, -20.0))
    assert bool(sim.footprint_covers("2MASS", 200.0, -60.0))
    ra = np.array([[83.82, 83.82], [200.0, 10.0]])
    dec = np.array([[-5.39, -7.9], [-60.0, 80.0]])
    out = sim.footprint_covers("SDSS9", ra, dec)
    assert out.shape == (2, 2) and out.dtype == bool
    assert out.tolist() == [[True, False], [False, False]]
    with pytest.raises(UnknownSurveyError):
        sim.footprint_covers("NoSuchSurvey", 0.0, 0.0)


# ------------------------------------------------------------------------------------------
# the written sky
# ------------------------------------------------------------------------------------------


def test_files_one_per_filter_for_covered_sources_only(sky):
    result, _ = sky
    root = result.out_dir
    sources = sim.read_sources(result.sources_csv)
    truth = sim.read_truth(result.truth_csv)
    assert result.surveys == DEFAULT
    assert result.n_sources == len(sources) == 120

    expected_pairs = set()
    expected_files = set()
    for name in DEFAULT:
        s = get_survey(name)
        covered = sim.footprint_covers(s, sources["ra"], sources["dec"])
        assert covered.sum() > 0
        for sid in sources["source_id"][covered]:
            expected_pairs.add((sid, name))
            for f in s.filter_names:
                expected_files.add(f"{name}/{sid}_{name}_{f}.fits")
        assert result.files_by_survey[name] == covered.sum() * len(s.filters)

    written = {str(p.relative_to(root)) for p in root.rglob("*.fits")}
    assert written == expected_files
    assert result.n_files == len(written)
    assert set(zip(truth["source_id"], truth["survey"])) == expected_pairs
    assert len(truth) == len(expected_pairs)
    # partial surveys really are partial here
    assert result.files_by_survey["HST"] < 120 * 3


def test_headers_wcs_and_pixels(sky):
    result, _ = sky
    sources = sim.read_sources(result.sources_csv)
    by_id = {row["source_id"]: row for row in sources}
    checked = set()
    for path in sorted(result.out_dir.rglob("*.fits")):
        survey_name = path.parent.name
        if survey_name in checked:
            continue
        checked.add(survey_name)
        s = get_survey(survey_name)
        with fits.open(path) as hdul:
            assert len(hdul) == 1
            hdr, data = hdul[0].header, hdul[0].data
        sid, sname, filt = path.stem.split("_")
        assert (sname, hdr["SURVEY"], hdr["FILTER"], hdr["SRCID"]) == (s.name, s.name, filt, sid)
        assert hdr["SIMSEED"] == 1
        assert hdr["FWHM"] == pytest.approx(sim.filter_fwhm_arcsec(s, filt))
        assert hdr["FWHM"] >= s.fwhm_arcsec
        assert "DATE" not in hdr and "DATE-OBS" not in hdr
        assert data.dtype == np.dtype(">f4") and data.ndim == 2
        n = max(9, round(10.0 / s.pixel_scale_arcsec))
        assert data.shape == (n, n)

        w = WCS(hdr)
        assert w.wcs.ctype[0] == "RA---TAN" and w.wcs.ctype[1] == "DEC--TAN"
        assert hdr["CDELT1"] < 0 < hdr["CDELT2"]
        scales = proj_plane_pixel_scales(w) * 3600.0
        np.testing.assert_allclose(scales, s.pixel_scale_arcsec, rtol=1e-9)
        centre = w.pixel_to_world((n - 1) / 2.0, (n - 1) / 2.0)
        src = by_id[sid]
        target = SkyCoord(src["ra"], src["dec"], unit="deg")
        assert centre.separation(target).arcsec < 1e-6
        # RA increases to the left
        left = w.pixel_to_world(0, (n - 1) / 2.0)
        assert (left.ra - centre.ra).wrap_at(180 * u.deg).deg > 0
        # the brightest pixel is the primary, at the centre (unless a brighter companion/field star)
        if not src["is_binary"] and not src["has_field_star"]:
            iy, ix = np.unravel_index(np.argmax(data), data.shape)
            assert abs(ix - (n - 1) / 2) <= 0.5 and abs(iy - (n - 1) / 2) <= 0.5
    assert checked == set(DEFAULT)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = sim.simulate_sky(tmp_path / "a", n_sources=12, seed=5)
    b = sim.simulate_sky(tmp_path / "b", n_sources=12, seed=5)
    c = sim.simulate_sky(tmp_path / "c", n_sources=12, seed=6)
    fa, fb, fc = _all_bytes(a.out_dir), _all_bytes(b.out_dir), _all_bytes(c.out_dir)
    assert len(fa) > 12 and fa == fb
    assert fa["sources.csv"] != fc["sources.csv"]
    common = sorted(set(fa) & set(fc) - {"sources.csv", "truth.csv"})
    assert common
    assert all(fa[k] != fc[k] for k in common)


def test_workers_write_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "_MIN_SOURCES_PER_WORKER", 4)  # a pool even for this small sky
    one = sim.simulate_sky(tmp_path / "one", n_sources=24, seed=9, surveys=["PS1", "HST"], workers=1)
    calls = []
    two = sim.simulate_sky(tmp_path / "two", n_sources=24, seed=9, surveys=["PS1", "HST"], workers=2,
                           progress=lambda done, total: calls.append((done, total)))
    assert two.files_by_survey == one.files_by_survey and two.n_files == one.n_files
    assert _all_bytes(two.out_dir) == _all_bytes(one.out_dir)
    assert calls[0] == (0, two.n_files) and calls[-1] == (two.n_files, two.n_files)


def test_adding_a_survey_does_not_change_another(tmp_path):
    alone = sim.simulate_sky(tmp_path / "alone", n_sources=10, seed=4, surveys=["hubble"])
    many = sim.simulate_sky(tmp_path / "many", n_sources=10, seed=4, surveys=["2mass", "HST", "PanSTARRS"])
    assert alone.surveys == ("HST",) and many.surveys == ("2MASS", "HST", "PanSTARRS")
    hst_alone = _fits_files(alone.out_dir)
    hst_many = {k: v for k, v in _fits_files(many.out_dir).items() if k.startswith("HST/")}
    assert hst_alone and hst_alone == hst_many


def test_render_stamp_reproduces_the_written_file(sky):
    result, _ = sky
    sources = sim.read_sources(result.sources_csv)
    row = sources[3]
    image, header, _ = sim.render_stamp(row, "PanSTARRS", "i", seed=1)
    with fits.open(result.out_dir / "PanSTARRS" / f"{row['source_id']}_PanSTARRS_i.fits") as hdul:
        assert np.array_equal(hdul[0].data, image)
        assert hdul[0].header["SKYSIG"] == header["SKYSIG"]


def test_progress_reports_files(sky):
    result, calls = sky
    assert calls[0] == (0, result.n_files)
    assert calls[-1] == (result.n_files, result.n_files)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(t for _, t in calls)) == 1


def test_aliases_and_unknown_surveys(tmp_path):
    r = sim.simulate_sky(tmp_path, n_sources=3, seed=0, surveys=("ps1", "PanSTARRS", "twomass"))
    assert r.surveys == ("PanSTARRS", "2MASS")
    assert (tmp_path / "PanSTARRS" / "00000_PanSTARRS_g.fits").exists()
    assert (tmp_path / "2MASS" / "00002_2MASS_Ks.fits").exists()
    with pytest.raises(UnknownSurveyError):
        sim.simulate_sky(tmp_path / "x", n_sources=3, surveys=("NotASurvey",))


# ------------------------------------------------------------------------------------------
# physics: resolution, noise, flux
# ------------------------------------------------------------------------------------------


def test_a_wide_pair_is_two_peaks_in_hst_and_one_in_2mass():
    row = _single(is_binary=True, separation_arcsec=1.5, position_angle_deg=60.0, flux_ratio=0.6)
    hst = get_survey("HST")
    image, header, snr = sim.render_stamp(row, hst, "V", seed=0)
    peaks = _peaks_near_centre(image, header, 2.5, hst.pixel_scale_arcsec)
    assert len(peaks) == 2
    assert snr > 5
    # the companion peak lies where the WCS puts a star 1.5" away at PA 60 deg
    w = WCS(header)
    comp = SkyCoord(row["ra"], row["dec"], unit="deg").directional_offset_by(60 * u.deg, 1.5 * u.arcsec)
    cx, cy = w.world_to_pixel(comp)
    assert min(math.hypot(c - cx, r - cy) for r, c in peaks) < 1.0
    assert cx < (image.shape[1] - 1) / 2  # east of the primary is to the left

    tmass = get_survey("2MASS")
    image, header, _ = sim.render_stamp(row, tmass, "J", seed=0)
    assert len(_peaks_near_centre(image, header, 2.5, tmass.pixel_scale_arcsec)) == 1


def test_wide_binary_from_the_simulation_is_labelled_per_survey(sky):
    result, _ = sky
    sources = sim.read_sources(result.sources_csv)
    truth = sim.read_truth(result.truth_csv)
    hst_covered = sim.footprint_covers("HST", sources["ra"], sources["dec"])
    sep = np.asarray(sources["separation_arcsec"])
    cand = np.nonzero(np.asarray(sources["is_binary"]) & hst_covered & (sep >= 1.0) & (sep <= 2.0))[0]
    assert len(cand) >= 2
    # the pair with the brightest companion
    comp_mag = sources["mag_r"][cand] - 2.5 * np.log10(sources["flux_ratio"][cand])
    src = sources[cand[np.argmin(comp_mag)]]
    sid = src["source_id"]

    def peaks(survey, filt):
        s = get_survey(survey)
        with fits.open(result.out_dir / s.name / f"{sid}_{s.name}_{filt}.fits") as hdul:
            return _peaks_near_centre(hdul[0].data, hdul[0].header, 2.5, s.pixel_scale_arcsec)

    assert len(peaks("HST", "I")) == 2
    assert len(peaks("2MASS", "Ks")) == 1

    def label(survey):
        m = (truth["source_id"] == sid) & (truth["survey"] == survey)
        assert m.sum() == 1
        return int(truth["label"][m][0])

    assert label("HST") == 1
    assert label("2MASS") == 0


def test_truth_labels_follow_the_rule(sky):
    result, _ = sky
    truth = sim.read_truth(result.truth_csv)
    assert set(np.unique(truth["label"])) <= {0, 1}
    rule = (truth["is_binary"] == 1) & (truth["separation_arcsec"] >= truth["fwhm_arcsec"]) & (
        truth["companion_snr"] >= 5
    )
    assert np.array_equal(truth["label"] == 1, rule)
    assert np.array_equal(truth["label"], sim.resolved_label(
        truth["is_binary"], truth["separation_arcsec"], truth["fwhm_arcsec"], truth["companion_snr"]))
    snr = truth["companion_snr"][truth["is_binary"] == 1]
    assert snr.min() < 10 < snr.max()
    for name in DEFAULT:
        m = truth["survey"] == name
        assert np.all(truth["fwhm_arcsec"][m] == get_survey(name).fwhm_arcsec)
    # 2MASS (FWHM 2.7") never resolves a pair closer than 2.5"; HST resolves most of its pairs
    assert truth["label"][truth["survey"] == "2MASS"].sum() == 0
    hst_bin = (truth["survey"] == "HST") & (truth["is_binary"] == 1)
    assert truth["label"][hst_bin].mean() > 0.6
    assert np.all(truth["companion_snr"][truth["is_binary"] == 0] == 0.0)


@pytest.mark.parametrize("survey,filt", [("HST", "V"), ("PanSTARRS", "r"), ("2MASS", "J"), ("SDSS9", "g")])
def test_star_centroid_is_at_the_wcs_position(survey, filt):
    s = get_survey(survey)
    row = _single(mag_r=13.0, color=2.0, ra=84.1, dec=-6.2)
    image, header, _ = sim.render_stamp(row, s, filt, seed=2)
    data = image.astype(float) - header["SKYLEV"]
    n = data.shape[0]
    yy, xx = np.mgrid[:n, :n]
    w = data * (np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) * s.pixel_scale_arcsec < 2.5 * header["FWHM"])
    cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    x0, y0 = WCS(header).world_to_pixel(SkyCoord(84.1, -6.2, unit="deg"))
    assert abs(cx - x0) < 0.05 and abs(cy - y0) < 0.05


def test_resolved_label_rule():
    assert sim.resolved_label(True, 1.5, 1.1, 30.0) == 1
    assert sim.resolved_label(False, 1.5, 1.1, 30.0) == 0
    assert sim.resolved_label(True, 1.0, 1.1, 30.0) == 0
    assert sim.resolved_label(True, 1.1, 1.1, 5.0) == 1
    assert sim.resolved_label(True, 1.5, 1.1, 4.9) == 0
    out = sim.resolved_label([1, 1], [2.0, 2.0], [0.08, 2.7], [50.0, 50.0])
    assert out.tolist() == [1, 0]


def test_companion_snr_tracks_companion_brightness():
    hst = get_survey("HST")
    faint = _single(mag_r=20.0, color=3.0, is_binary=True, separation_arcsec=2.0,
                    position_angle_deg=200.0, flux_ratio=0.1)
    bright = dict(faint, mag_r=15.0, flux_ratio=0.8)
    snr_faint = max(sim.render_stamp(faint, hst, f, seed=0)[2] for f in hst.filter_names)
    snr_bright = max(sim.render_stamp(bright, hst, f, seed=0)[2] for f in hst.filter_names)
    assert snr_faint < 5 < snr_bright
    # about 100 x brighter companion -> well over 10 x the S/N (Poisson-limited at the bright end)
    assert snr_bright > 10 * snr_faint
    assert sim.render_stamp(_single(), hst, "V", seed=0)[2] == 0.0


def test_streams_differ_between_surveys_and_filters():
    row = _single(mag_r=20.0, color=0.0)
    z = []
    for name, filt in (("2MASS", "J"), ("2MASS", "H"), ("PanSTARRS", "g"), ("SDSS9", "u"), ("HST", "B")):
        image, header, _ = sim.render_stamp(row, name, filt, seed=0)
        z.append((float(image[0, 0]) - header["SKYLEV"]) / header["SKYSIG"])
    assert min(abs(a - b) for i, a in enumerate(z) for b in z[i + 1:]) > 1e-3


def test_noise_and_flux_levels():
    tmass, hst = get_survey("2MASS"), get_survey("HST")
    # flux is conserved by the pixel-integrated PSF even when undersampled (2MASS, 1"/px)
    row = _single(mag_r=13.0, color=3.0)
    image, header, _ = sim.render_stamp(row, tmass, "J", seed=0)
    expected = 10 ** (-0.4 * (sim.band_magnitude(13.0, 3.0, tmass.filter("J").wavelength_um) - header["MAGZP"]))
    measured = float(np.sum(image.astype(float) - header["SKYLEV"]))
    assert measured == pytest.approx(expected, rel=0.03)
    # the background noise matches SKYSIG (HST stamps are big enough to measure it)
    image, header, _ = sim.render_stamp(row, hst, "V", seed=0)
    corner = image[:60, :60].astype(float)
    assert corner.mean() == pytest.approx(header["SKYLEV"], abs=3 * header["SKYSIG"] / 60)
    assert corner.std() == pytest.approx(header["SKYSIG"], rel=0.05)
    # the faintest stars still have S/N ~ 10-20 in r; bright ones much more
    ps1 = get_survey("PanSTARRS")
    for mag, lo, hi in ((20.0, 8.0, 22.0), (13.0, 200.0, np.inf)):
        flux = 10 ** (-0.4 * (mag - 28.0))
        image, header, _ = sim.render_stamp(_single(mag_r=mag, color=0.0), ps1, "r", seed=0)
        n = image.shape[0]
        yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
        ap = np.hypot(xx, yy) * ps1.pixel_scale_arcsec <= 1.1  # aperture of radius 1 FWHM
        signal = float(np.sum(image[ap] - header["SKYLEV"]))
        noise = math.sqrt(ap.sum() * header["SKYLEV"] + signal)
        assert lo < signal / noise < hi
        assert signal == pytest.approx(0.94 * flux, rel=0.3)


# ------------------------------------------------------------------------------------------
# CSVs
# ------------------------------------------------------------------------------------------


def test_csvs_keep_zero_padded_ids(sky):
    result, _ = sky
    text = result.truth_csv.read_text().splitlines()
    assert text[0] == "source_id,survey,label,is_binary,separation_arcsec,fwhm_arcsec,flux_ratio,companion_snr"
    assert text[1].startswith("00000,")
    truth = sim.read_truth(result.truth_csv)
    assert truth["source_id"].dtype.kind == "U" and truth["source_id"][0] == "00000"
    assert truth["label"].dtype.kind == "i"
    plain = Table.read(result.truth_csv, format="ascii.csv", converters={"source_id": str})
    assert plain["source_id"][0] == "00000"

    sources = sim.read_sources(result.sources_csv)
    again = sim.simulate_sources(120, seed=1)
    for name in again.colnames:
        assert np.array_equal(sources[name], again[name]), name

    polars = pytest.importorskip("polars")
    df = polars.read_csv(result.truth_csv, schema_overrides={"source_id": polars.String})
    assert df["source_id"][0] == "00000" and df.height == len(truth)


def test_first_id_gives_a_second_sky_ids_of_its_own(tmp_path):
    res = sim.simulate_sky(tmp_path, n_sources=3, surveys=["2MASS"], seed=4, first_id=100000)
    sources, truth = sim.read_sources(res.sources_csv), sim.read_truth(res.truth_csv)
    assert list(sources["source_id"]) == ["100000", "100001", "100002"]
    assert set(truth["source_id"]) <= {"100000", "100001", "100002"} and len(truth) > 0
    assert (tmp_path / "2MASS" / "100000_2MASS_J.fits").exists()
    with pytest.raises(BinarycatError):
        sim.simulate_sources(3, first_id=-1)


_UNCHANGED = ("ra", "dec", "mag_r", "is_binary", "position_angle_deg", "has_field_star", "field_flux_ratio")


@pytest.mark.parametrize("option, column, lo, hi, middle, default", [
    # separations are log-uniform: half the pairs below the geometric mean of the limits
    ("separation_range", "separation_arcsec", 0.85, 1.75, np.sqrt(0.85 * 1.75), (0.1, 2.5)),
    ("flux_ratio_range", "flux_ratio", 0.1, 0.3, 0.2, (0.1, 1.0)),
])
def test_a_range_option_moves_only_its_own_column(option, column, lo, hi, middle, default):
    wide = sim.simulate_sources(400, seed=5)
    narrow = sim.simulate_sources(400, seed=5, **{option: (lo, hi)})
    binary = np.asarray(narrow["is_binary"])
    values = np.asarray(narrow[column])[binary]
    assert values.min() >= lo and values.max() <= hi
    assert abs(np.mean(values < middle) - 0.5) < 0.1
    wide_values = np.asarray(wide[column])[binary]
    assert wide_values.min() < lo or wide_values.max() > hi
    assert np.all(np.asarray(narrow[column])[~binary] == 0.0)
    other = "flux_ratio" if column == "separation_arcsec" else "separation_arcsec"
    for name in _UNCHANGED + (other,):
        assert np.array_equal(wide[name], narrow[name]), name
    assert np.array_equal(sim.simulate_sources(50, seed=5, **{option: default})[column],
                          sim.simulate_sources(50, seed=5)[column])


@pytest.mark.parametrize("option, bad", [
    *[("separation_range", bad) for bad in [(0.0, 1.0), (1.5, 1.0), (0.5, 3.0), ("a", "b"), (1.0,)]],
    *[("flux_ratio_range", bad) for bad in [(0.0, 0.5), (0.5, 0.2), (0.2, 1.5), ("a", "b"), (0.3,)]],
])
def test_a_bad_range_is_refused(option, bad):
    with pytest.raises(BinarycatError, match=option):
        sim.simulate_sources(3, **{option: bad})


# ------------------------------------------------------------------------------------------
# Moffat PSFs
# ------------------------------------------------------------------------------------------


def _fwhm_along_row(model: np.ndarray, c: int) -> float:
    """Full width at half maximum (pixels) of the row through a profile centred on pixel (c, c)."""
    row = model[c] / model[c, c]
    right = row[c:]
    i = int(np.argmax(right < 0.5))
    return 2.0 * float(np.interp(0.5, right[[i, i - 1]], [i, i - 1]))


@pytest.mark.parametrize("fwhm_pix", [6.0, 10.0])
def test_moffat_has_its_fwhm_its_flux_and_wings_a_gaussian_lacks(fwhm_pix):
    n, c = 201, 100.0
    moffat = sim._render_model(n, [c], [c], [1.0], sim._PSF("moffat", fwhm_pix, 2.5))
    gauss = sim._render_model(n, [c], [c], [1.0], sim._PSF("gaussian", fwhm_pix))
    for model in (moffat, gauss):
        assert _fwhm_along_row(model, int(c)) == pytest.approx(fwhm_pix, rel=0.03)
    # a beta = 2.5 Moffat puts (1 + R**2/gamma**2)**-1.5 of its flux beyond R; the stamp holds the rest
    gamma = fwhm_pix / (2 * math.sqrt(2 ** (1 / 2.5) - 1))
    assert moffat.sum() == pytest.approx(1 - (1 + (c / gamma) ** 2) ** -1.5, rel=2e-3)
    at_3_fwhm = int(round(c + 3 * fwhm_pix))
    assert moffat[int(c), at_3_fwhm] / moffat.max() > 1e-3 and gauss[int(c), at_3_fwhm] / gauss.max() < 1e-9


def test_moffat_pixels_are_pixel_averages():
    """The sub-pixel rule against a brute-force 25 x 25 average of every pixel, off-centre."""
    n, x, y, fwhm, beta = 41, 19.3, 21.7, 2.2, 3.0
    image = sim._moffat_image(n, x, y, fwhm, beta)
    gamma = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    sub = (np.arange(25) + 0.5) / 25 - 0.5
    g = (np.arange(n)[:, None] + sub[None, :]).ravel()
    fine = (beta - 1) / (math.pi * gamma**2) * (1 + ((g[None, :] - x) ** 2 + (g[:, None] - y) ** 2) / gamma**2) ** -beta
    exact = fine.reshape(n, 25, n, 25).mean(axis=(1, 3))
    assert np.abs(image - exact).max() < 0.004 * exact.max()
    # pixel centres alone would be far off at this sampling
    centres = (beta - 1) / (math.pi * gamma**2) * (
        1 + ((np.arange(n)[None, :] - x) ** 2 + (np.arange(n)[:, None] - y) ** 2) / gamma**2) ** -beta
    assert np.abs(centres - exact).max() > 0.02 * exact.max()


def test_moffat_sky_keeps_the_label_rule_and_says_its_psf(tmp_path):
    res = sim.simulate_sky(tmp_path / "m", n_sources=12, seed=3, surveys=["PanSTARRS", "HST"],
                           psf="moffat", moffat_beta=3.0)
    gauss = sim.simulate_sky(tmp_path / "g", n_sources=12, seed=3, surveys=["PanSTARRS", "HST"])
    for path in sorted((res.out_dir / "PanSTARRS").glob("*.fits"))[:3]:
        header = fits.getheader(path)
        assert header["PSF"] == "MOFFAT" and header["PSFBETA"] == 3.0
        other = fits.getheader(gauss.out_dir / "PanSTARRS" / path.name)
        assert other["PSF"] == "GAUSSIAN" and "PSFBETA" not in other
        assert fits.getdata(path).shape == fits.getdata(gauss.out_dir / "PanSTARRS" / path.name).shape
    truth = sim.read_truth(res.truth_csv)
    rule = sim.resolved_label(truth["is_binary"] == 1, truth["separation_arcsec"], truth["fwhm_arcsec"],
                              truth["companion_snr"])
    assert np.array_equal(np.asarray(truth["label"]), rule)
    # the same sources and the same seed: only the pixels differ
    assert sim.read_sources(res.sources_csv).pformat() == sim.read_sources(gauss.sources_csv).pformat()
    # the same arguments again give the same bytes
    again = sim.simulate_sky(tmp_path / "m2", n_sources=12, seed=3, surveys=["PanSTARRS", "HST"],
                             psf="moffat", moffat_beta=3.0)
    assert _all_bytes(res.out_dir) == _all_bytes(again.out_dir)
    sources = sim.read_sources(res.sources_csv)
    hst = next(iter(truth[truth["survey"] == "HST"]))
    row = sources[list(sources["source_id"]).index(hst["source_id"])]
    image, header, _ = sim.render_stamp(row, "HST", "V", seed=3, psf="moffat", moffat_beta=3.0)
    with fits.open(sim.stamp_path(res.out_dir, row["source_id"], get_survey("HST"), "V")) as hdul:
        assert np.array_equal(hdul[0].data, image)


def test_moffat_beta_range_draws_one_beta_per_source_and_survey(tmp_path):
    kw = dict(n_sources=8, seed=3, surveys=["PanSTARRS", "SDSS9"], psf="moffat")
    res = sim.simulate_sky(tmp_path / "r", moffat_beta=(2.0, 5.0), **kw)
    fixed = sim.simulate_sky(tmp_path / "f", moffat_beta=3.0, **kw)
    betas = {}
    for path in sorted(res.out_dir.glob("*/*.fits")):
        source, survey, _ = path.stem.split("_")
        betas.setdefault((source, survey), set()).add(fits.getheader(path)["PSFBETA"])
    assert all(len(b) == 1 for b in betas.values())  # every filter of one image shares its PSF
    values = np.array([b.pop() for b in betas.values()])
    assert ((values >= 2.0) & (values <= 5.0)).all() and len(set(values)) == len(values) == len(sim.read_truth(res.truth_csv))
    assert values.std() > 0.5
    # the draw has a stream of its own: sources, truth rule and noise streams are untouched
    assert sim.read_sources(res.sources_csv).pformat() == sim.read_sources(fixed.sources_csv).pformat()
    truth = sim.read_truth(res.truth_csv)
    assert np.array_equal(np.asarray(truth["label"]), sim.resolved_label(
        truth["is_binary"] == 1, truth["separation_arcsec"], truth["fwhm_arcsec"], truth["companion_snr"]))
    row = sim.read_sources(res.sources_csv)[5]
    image, header, _ = sim.render_stamp(row, "SDSS9", "r", seed=3, psf="moffat", moffat_beta=(2.0, 5.0))
    path = sim.stamp_path(res.out_dir, row["source_id"], get_survey("SDSS9"), "r")
    assert np.array_equal(fits.getdata(path), image) and header["PSFBETA"] == fits.getheader(path)["PSFBETA"]
    again = sim.simulate_sky(tmp_path / "r2", moffat_beta=[2.0, 5.0], **kw)
    assert _all_bytes(res.out_dir) == _all_bytes(again.out_dir)


@pytest.mark.parametrize("psf,beta,words", [("airy", 2.5, "Unknown PSF profile"), ("moffat", 1.0, "beta"),
                                            ("moffat", float("nan"), "beta"), ("moffat", (4.0, 2.0), "min <= max"),
                                            ("moffat", (0.5, 2.0), "beta"), ("moffat", (2, 3, 4), "pair")])
def test_bad_psf_arguments_are_refused(tmp_path, psf, beta, words):
    with pytest.raises(BinarycatError, match=words):
        sim.simulate_sky(tmp_path / "x", n_sources=2, psf=psf, moffat_beta=beta)
    assert not (tmp_path / "x").exists()
    with pytest.raises(BinarycatError, match=words):
        sim.render_stamp(_single(), "HST", "V", psf=psf, moffat_beta=beta)
