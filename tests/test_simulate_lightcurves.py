"""Tests for binarycat.ingest.simulate_lightcurves: simulated TESS light curves, EBs and look-alikes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from astropy.table import Table
from astropy.timeseries import LombScargle

from binarycat.errors import BinarycatError
from binarycat.ingest import simulate_lightcurves as slc
from binarycat.ingest.simulate import simulate_sources
from binarycat.ingest.tess_fits import CADENCE_DAYS, read_spoc_lightcurve, spoc_filename

BRIGHT = 9.0  # Tmag of the shape tests: ~400 ppm per point


def _targets(n, start=0):
    return [{"source_id": f"s{i:03d}", "ra": 83.0 + 0.01 * i, "dec": -5.0 - 0.01 * i,
             "tessmag": 9.0 + (i % 5)} for i in range(start, start + n)]


def _good(lc):
    return (lc.quality == 0) & np.isfinite(lc.time) & np.isfinite(lc.flux)


def _fold(lc, period, epoch):
    good = _good(lc)
    t, f = lc.time[good], lc.flux[good]
    return np.mod((t - epoch) / period, 1.0), f


def _phase_dist(phase, centre):
    return np.abs(np.mod(phase - centre + 0.5, 1.0) - 0.5)


def _one(kind, seed=0, tessmag=BRIGHT, **params):
    return slc.simulate_lightcurve(kind, rng=np.random.default_rng(seed), tic_id=42, sector=5,
                                   ra=83.8, dec=-5.4, tessmag=tessmag, **params)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Nine curves written twice with the same seed, once more with another seed."""
    a = tmp_path_factory.mktemp("lc_a")
    b = tmp_path_factory.mktemp("lc_b")
    c = tmp_path_factory.mktemp("lc_c")
    targets = _targets(9)
    calls = []
    ra = slc.simulate_lightcurves(targets, seed=7, sector=3, out_dir=a,
                                  progress=lambda d, t: calls.append((d, t)))
    rb = slc.simulate_lightcurves(targets, seed=7, sector=3, out_dir=b, keep_arrays=False)
    rc = slc.simulate_lightcurves(targets, seed=8, sector=3, out_dir=c, keep_arrays=False)
    return ra, rb, rc, calls


# ------------------------------------------------------------------------------------------
# determinism, files, layout
# ------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_truth_and_byte_identical_files(written):
    ra, rb, rc, _ = written
    assert len(ra.paths) == len(rb.paths) == 9
    for pa, pb in zip(ra.paths, rb.paths):
        assert pa.name == pb.name
        assert pa.read_bytes() == pb.read_bytes()
    assert ra.truth_csv.read_bytes() == rb.truth_csv.read_bytes()
    assert list(ra.truth["kind"]) == list(rb.truth["kind"])
    assert rb.lightcurves == [] and len(ra.lightcurves) == 9
    # another seed changes the curves
    assert any(pa.read_bytes() != pc.read_bytes() for pa, pc in zip(ra.paths, rc.paths))


def test_curves_do_not_depend_on_the_other_targets():
    full = slc.simulate_lightcurves(_targets(6), seed=3, eb_fraction=0.5)
    # the subset got fake TIC ids by position, so pass the full run's ids explicitly
    targets = [dict(t, tic_id=int(full.truth["tic_id"][3 + i])) for i, t in enumerate(_targets(3, start=3))]
    part = slc.simulate_lightcurves(targets[::-1], seed=3, eb_fraction=0.5)
    for j, i in enumerate((5, 4, 3)):
        assert part.truth["kind"][j] == full.truth["kind"][i]
        np.testing.assert_array_equal(part.lightcurves[j].flux, full.lightcurves[i].flux)


def test_files_read_back_with_their_header_and_truth(written):
    ra, _, _, calls = written
    assert calls[0] == (0, 9) and calls[-1] == (9, 9)
    truth = slc.read_lightcurve_truth(ra.truth_csv)
    assert truth.colnames[:12] == ["tic_id", "sector", "source_id", "ra", "dec", "tessmag", "label",
                                   "kind", "period_days", "primary_depth", "secondary_depth", "file"]
    assert truth["source_id"][0] == "s000"
    for row, path, lc0 in zip(truth, ra.paths, ra.lightcurves):
        assert path.name == row["file"] == spoc_filename(row["tic_id"], 3)
        lc = read_spoc_lightcurve(path)
        assert lc.tic_id == row["tic_id"] and lc.sector == 3 == row["sector"]
        assert lc.ra == pytest.approx(row["ra"]) and lc.dec == pytest.approx(row["dec"])
        assert lc.tessmag == pytest.approx(row["tessmag"])
        np.testing.assert_array_equal(lc.flux, lc0.flux)
        np.testing.assert_array_equal(lc.quality, lc0.quality)
        np.testing.assert_array_equal(lc.time, lc0.time)


def test_cadence_gap_segments_flags_and_nans():
    lc, _ = _one("quiet")
    assert 18_000 <= lc.n_points <= 20_500
    t = lc.time[np.isfinite(lc.time)]
    steps = np.diff(t)
    assert np.allclose(np.median(steps), CADENCE_DAYS)
    assert steps.max() > 0.75 and (steps > 0.75).sum() == 1  # one mid-sector gap
    assert (~np.isfinite(lc.time)).sum() > 0.75 / CADENCE_DAYS  # gap rows kept, TIME NaN
    good = _good(lc)
    tg = lc.time[good]
    cuts = np.flatnonzero(np.diff(tg) > 0.75)
    segments = np.split(tg, cuts + 1)
    assert len(segments) >= 2 and all(s.size >= 2000 for s in segments)
    assert (lc.quality & 32).any()  # momentum dumps
    assert (lc.quality & 1024).any() or (lc.quality & 512).any() or (lc.quality & 128).any()
    # NaN flux outside the gap, some at cadences with QUALITY 0
    nan_flux = ~np.isfinite(lc.flux) & np.isfinite(lc.time)
    assert nan_flux.any()
    dumps = np.flatnonzero(lc.quality & 32)
    assert np.all(np.diff(lc.time[dumps])[np.diff(lc.time[dumps]) > 0.5] > 2.4)
    # flux level and noise follow tessmag
    med = np.median(lc.flux[good])
    assert med == pytest.approx(15000 * 10 ** (-0.4 * (BRIGHT - 10)), rel=0.08)
    assert np.std(np.diff(lc.flux[good])) / np.sqrt(2) / med == pytest.approx(
        float(slc.noise_per_point(BRIGHT)), rel=0.3)


def test_sector_layout_is_shared_by_every_target_of_a_sector():
    a, _ = _one("quiet", seed=1)
    b, _ = _one("EW", seed=2)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.quality & 32, b.quality & 32)
    other = slc.sector_layout(6)
    assert other.grid[0] > np.nanmax(a.time)


# ------------------------------------------------------------------------------------------
# shapes of the kinds
# ------------------------------------------------------------------------------------------


def test_ea_primary_minima_at_the_expected_times():
    lc, truth = _one("EA", period=3.0, r_sum=0.12, radius_ratio=0.6, sb_ratio=0.5, impact=0.0,
                     e=0.0, dilution=0.2)
    assert truth["label"] == 1 and truth["detectable"]
    phase, f = _fold(lc, truth["period_days"], truth["epoch_btjd"])
    half = truth["r_sum"] / np.pi / 2  # half the eclipse width in phase
    out = np.median(f[(_phase_dist(phase, 0.0) > 2 * half) & (_phase_dist(phase, 0.5) > 2 * half)])
    inside = np.median(f[_phase_dist(phase, 0.0) < 0.1 * half])
    assert 1 - inside / out == pytest.approx(truth["primary_depth"], rel=0.1)
    sec = np.median(f[_phase_dist(phase, truth["secondary_phase"]) < 0.1 * half])
    assert 1 - sec / out == pytest.approx(truth["secondary_depth"], rel=0.15)
    assert truth["secondary_depth"] < truth["primary_depth"]
    assert truth["secondary_phase"] == pytest.approx(0.5)
    # outside eclipse it is flat
    outside = f[(_phase_dist(phase, 0.0) > 2 * half) & (_phase_dist(phase, 0.5) > 2 * half)]
    bins = np.array([np.median(outside[i::20]) for i in range(20)])
    assert np.ptp(bins) / out < 0.002


def test_eccentric_ea_moves_the_secondary_off_phase_half():
    lc, truth = _one("EA", period=6.0, r_sum=0.1, radius_ratio=0.8, sb_ratio=0.7, impact=0.1,
                     e=0.3, omega=0.0, dilution=0.0)
    assert abs(truth["secondary_phase"] - 0.5) > 0.1
    phase, f = _fold(lc, truth["period_days"], truth["epoch_btjd"])
    out = np.median(f)
    dip = np.median(f[_phase_dist(phase, truth["secondary_phase"]) < 0.003])
    at_half = np.median(f[_phase_dist(phase, 0.5) < 0.003])
    assert 1 - dip / out > 0.5 * truth["secondary_depth"]
    assert abs(1 - at_half / out) < 0.002


def test_ew_has_two_near_equal_minima_per_period():
    lc, truth = _one("EW", seed=3)
    assert 0.22 <= truth["period_days"] <= 1.0
    phase, f = _fold(lc, truth["period_days"], truth["epoch_btjd"])
    edges = np.linspace(0, 1, 41)
    prof = np.array([np.median(f[(phase >= a) & (phase < b)]) for a, b in zip(edges[:-1], edges[1:])])
    top = prof.max()
    d1 = 1 - min(prof[0], prof[-1]) / top
    d2 = 1 - min(prof[19], prof[20]) / top
    assert d2 / d1 > 0.75
    # exactly two minima per period in the binned profile (cyclic local minima)
    is_min = (prof < np.roll(prof, 1)) & (prof < np.roll(prof, -1))
    assert is_min.sum() == 2
    assert truth["secondary_depth"] / truth["primary_depth"] >= 0.75


def test_eb_beta_lyrae_has_unequal_minima_and_continuous_variation():
    lc, truth = _one("EB", seed=4)
    assert truth["secondary_depth"] <= 0.8 * truth["primary_depth"]
    phase, f = _fold(lc, truth["period_days"], truth["epoch_btjd"])
    quad = np.median(f[_phase_dist(phase, 0.25) < 0.01])
    top_max = np.median(f[_phase_dist(phase, 0.25) < 0.01]) / np.median(f[_phase_dist(phase, 0.15) < 0.01])
    assert top_max > 1.0  # still rising towards quadrature: no flat part
    assert np.median(f[_phase_dist(phase, 0.0) < 0.005]) < quad * (1 - 0.8 * truth["primary_depth"])


def test_transit_has_no_secondary():
    lc, truth = _one("transit", depth=0.01, period=2.5, duration=0.125, impact=0.2)
    assert truth["label"] == 0 and truth["secondary_depth"] == 0.0
    assert truth["primary_depth"] == pytest.approx(0.01, rel=0.2)
    phase, f = _fold(lc, truth["period_days"], truth["epoch_btjd"])
    half = 0.5 * truth["duration"] / truth["period_days"]
    out = np.median(f[_phase_dist(phase, 0.0) > 2 * half])
    inside = np.median(f[_phase_dist(phase, 0.0) < 0.2 * half])
    assert 1 - inside / out == pytest.approx(truth["primary_depth"], rel=0.15)
    at_half = f[_phase_dist(phase, 0.5) < half]
    sigma = np.std(f[_phase_dist(phase, 0.0) > 2 * half]) / np.sqrt(at_half.size)
    assert abs(np.median(at_half) - out) < 5 * sigma + 1e-4 * out


def test_spot_curve_varies_periodically_without_eclipses():
    lc, truth = _one("spots", period=3.0, amplitude=0.02, n_spots=1)
    assert truth["label"] == 0 and truth["primary_depth"] == 0.0
    good = _good(lc)
    t, f = lc.time[good], lc.flux[good] / np.median(lc.flux[good])
    freq, power = LombScargle(t, f).autopower(minimum_frequency=1 / 15, maximum_frequency=5,
                                             samples_per_peak=20)
    best = 1 / freq[np.argmax(power)]
    assert best == pytest.approx(3.0, rel=0.05) or best == pytest.approx(1.5, rel=0.05)
    assert power.max() > 0.3
    # no eclipse: the dip is broad (a spot is visible for about half a rotation)
    phase = np.mod(t / 3.0, 1.0)
    edges = np.linspace(0, 1, 51)
    prof = np.array([np.median(f[(phase >= a) & (phase < b)]) for a, b in zip(edges[:-1], edges[1:])])
    half_depth = prof.max() - 0.5 * np.ptp(prof)
    assert (prof < half_depth).mean() > 0.15


def test_pulsators_and_systematics_are_not_ebs():
    for kind in ("dsct", "rrlyr", "systematics", "quiet"):
        lc, truth = _one(kind, seed=5)
        assert truth["label"] == 0 and truth["kind"] == kind
        assert lc.n_good > 15_000
    _, dsct = _one("dsct", seed=5)
    assert 0.02 <= dsct["period_days"] <= 0.25
    _, rr = _one("rrlyr", seed=5)
    assert 0.3 <= rr["period_days"] <= 0.9 and rr["amplitude"] > 0.1


def test_every_eb_obeys_the_detectability_rule_even_when_faint():
    for kind in slc.EB_KINDS:
        for seed in range(4):
            lc, truth = _one(kind, seed=seed, tessmag=16.5)
            sigma_30 = truth["noise_ppm"] * 1e-6 / np.sqrt(15)
            assert truth["detectable"] and truth["primary_depth"] >= 5 * sigma_30
            assert slc.is_detectable(truth["primary_depth"], truth["secondary_depth"], sigma_30)


# ------------------------------------------------------------------------------------------
# many targets, selection, speed
# ------------------------------------------------------------------------------------------


def test_labels_and_eb_fraction_on_500_targets():
    start = time.perf_counter()
    res = slc.simulate_lightcurves(_targets(500), seed=11, eb_fraction=0.4, keep_arrays=False)
    per_curve_ms = 1000 * (time.perf_counter() - start) / 500
    print(f"\n{per_curve_ms:.1f} ms per curve (arrays only)")
    truth = res.truth
    label = np.asarray(truth["label"])
    is_eb = np.isin(np.asarray(truth["kind"]), slc.EB_KINDS)
    np.testing.assert_array_equal(label == 1, is_eb)
    assert set(np.unique(label)) == {0, 1}
    assert abs(label.mean() - 0.4) < 0.07
    kinds = list(truth["kind"])
    assert kinds.count("EA") > kinds.count("EW") > kinds.count("EB") > 0
    assert set(kinds) == set(slc.KINDS)
    assert np.all(truth["period_days"][is_eb] > 0)
    assert np.all(truth["primary_depth"][is_eb] >= truth["secondary_depth"][is_eb])
    assert res.lightcurves == [] and res.paths == []
    none = slc.simulate_lightcurves(_targets(20), seed=11, eb_fraction=0.0, keep_arrays=False)
    assert not np.any(none.truth["label"])
    only = slc.simulate_lightcurves(_targets(20), seed=11, eb_fraction=1.0, keep_arrays=False)
    assert np.all(only.truth["label"] == 1)


def test_fake_tic_ids_and_tessmag_from_mag_r():
    targets = [{"source_id": "a", "ra": 10.0, "dec": 1.0, "mag_r": 12.0},
               {"source_id": "b", "ra": 11.0, "dec": 2.0}]
    res = slc.simulate_lightcurves(targets, seed=0)
    assert list(res.truth["tic_id"]) == [100_000_000, 100_000_001]
    assert res.truth["tessmag"][0] == pytest.approx(11.5)
    assert 8.0 <= res.truth["tessmag"][1] <= 14.0


def test_select_tess_targets_picks_bright_sources():
    sources = simulate_sources(400, seed=2)
    chosen = slc.select_tess_targets(sources, n=20, seed=1)
    assert len(chosen) == 20
    assert np.all(chosen["mag_r"] < 16.0)
    assert len(set(chosen["tic_id"])) == 20
    assert np.all(chosen["tessmag"] < chosen["mag_r"])
    again = slc.select_tess_targets(sources, n=20, seed=1)
    assert list(again["source_id"]) == list(chosen["source_id"])
    everyone = slc.select_tess_targets(sources)
    assert len(everyone) == int(np.sum(sources["mag_r"] < 16.0))
    # a source keeps its TIC id whatever else is chosen
    ids = dict(zip(everyone["source_id"], everyone["tic_id"]))
    assert all(ids[s] == t for s, t in zip(chosen["source_id"], chosen["tic_id"]))
    some = slc.select_tess_targets(sources, fraction=0.5, seed=3)
    assert 0 < len(some) < len(everyone)
    res = slc.simulate_lightcurves(chosen[:3], seed=0)
    assert list(res.truth["tic_id"]) == list(chosen["tic_id"][:3])


@pytest.mark.parametrize("call, needle", [
    (lambda: slc.simulate_lightcurves(_targets(2), seed=-1), "seed"),
    (lambda: slc.simulate_lightcurves(_targets(2), eb_fraction=1.5), "eb_fraction"),
    (lambda: slc.simulate_lightcurves(_targets(2), eb_fraction=-0.1), "eb_fraction"),
    (lambda: slc.simulate_lightcurves(_targets(2), lookalike_weights={"comet": 1}), "comet"),
    (lambda: slc.simulate_lightcurves([{"source_id": "x", "ra": 1.0}]), "dec"),
    (lambda: slc.simulate_lightcurves([dict(t, tic_id=5) for t in _targets(2)]), "twice"),
    (lambda: slc.simulate_lightcurves([dict(_targets(1)[0], tessmag=19.0)]), "tessmag"),
    (lambda: _one("XX"), "kind"),
    (lambda: _one("EA", bogus=1.0), "bogus"),
    (lambda: slc.select_tess_targets(Table({"ra": [1.0]})), "source_id"),
    (lambda: slc.select_tess_targets(simulate_sources(5), n=2, fraction=0.5), "either"),
])
def test_bad_arguments_raise_one_sentence(call, needle):
    with pytest.raises(BinarycatError) as info:
        call()
    message = str(info.value)
    assert needle in message
    assert "\n" not in message and message.endswith(".")
