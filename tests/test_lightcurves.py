"""TESS light curves: the SPOC reader, the Parquet light-curve store and the file ingest."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from binarycat.catalog.arrays import orphan_shards, remove_orphan_shards
from binarycat.catalog.lightcurve_store import load_lightcurves, store_lightcurves
from binarycat.errors import BadFitsError, BinarycatError
from binarycat.ingest.lightcurves import ingest_lightcurve_files, ingest_lightcurves
from binarycat.ingest.tess_fits import (CADENCE_DAYS, TessLightCurve, read_spoc_lightcurve, spoc_filename,
                                        write_spoc_lightcurve)
from tests.conftest import add_sources


def make_lc(tic, ra, dec, n=3000, sector=6, seed=0, **kw) -> TessLightCurve:
    rng = np.random.default_rng(seed)
    time = 1468.27 + np.arange(n) * CADENCE_DAYS
    flux = (5000 + rng.normal(0, 5, n)).astype(np.float32)
    quality = np.zeros(n, np.int32)
    quality[::500] = 32
    flux[7] = np.nan
    time[3] = np.nan
    return TessLightCurve(tic, sector, ra, dec, time, flux, np.full(n, 5.0, np.float32), quality,
                          tessmag=11.2, **kw)


def test_spoc_round_trip_keeps_every_value(tmp_path):
    lc = make_lc(25155310, 83.82, -5.39)
    path = write_spoc_lightcurve(tmp_path / spoc_filename(lc.tic_id, lc.sector), lc)
    assert path.name == "tess2019000000000-s0006-0000000025155310-0000-s_lc.fits"
    back = read_spoc_lightcurve(path)
    assert (back.tic_id, back.sector, back.ra, back.dec, back.tessmag) == (25155310, 6, 83.82, -5.39, 11.2)
    np.testing.assert_array_equal(back.time, lc.time)  # NaN where NaN
    np.testing.assert_array_equal(back.flux, lc.flux)
    np.testing.assert_array_equal(back.quality, lc.quality)
    assert back.n_good == lc.n_good == 3000 - 6 - 2
    with fits.open(path) as hdul:  # the SPOC layout a real reader expects
        assert hdul[1].name == "LIGHTCURVE" and hdul[0].header["OBJECT"] == "TIC 25155310"
        assert hdul[1].columns["TIME"].unit == "BJD - 2457000, days"


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"hello, not a FITS file" * 100, "not a FITS file"),
])
def test_reader_rejects_bad_files_in_one_sentence(tmp_path, content, reason):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(BadFitsError, match=reason):
        read_spoc_lightcurve(path)


def test_reader_rejects_truncated_and_foreign_files(tmp_path):
    good = write_spoc_lightcurve(tmp_path / "good.fits", make_lc(1, 10, 10))
    cut = tmp_path / "cut.fits"
    cut.write_bytes(good.read_bytes()[: 2880 * 6])
    with pytest.raises(BadFitsError, match="truncated|not a readable"):
        read_spoc_lightcurve(cut)
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image)
    with pytest.raises(BadFitsError, match="no light-curve table"):
        read_spoc_lightcurve(image)
    with pytest.raises(BadFitsError, match="no such file"):
        read_spoc_lightcurve(tmp_path / "missing.fits")
    no_tic = tmp_path / "no_tic.fits"
    with fits.open(good) as hdul:
        del hdul[0].header["TICID"]
        hdul.writeto(no_tic)
    with pytest.raises(BadFitsError, match="TICID"):
        read_spoc_lightcurve(no_tic)


def test_store_round_trip_match_and_blend(catalog):
    add_sources(catalog, [("a", 83.8, -5.4), ("b", 83.8 + 15 / 3600, -5.4), ("c", 10.0, 10.0)])
    lcs = [make_lc(1, 83.8 + 1 / 3600, -5.4, seed=1), make_lc(2, 10.0, 10.0, seed=2),
           make_lc(3, 50.0, 50.0, seed=3)]
    res = store_lightcurves(catalog, lcs)
    assert sorted(res.added) == ["TIC1-s0006", "TIC2-s0006", "TIC3-s0006"]
    rows = {r[0]: r[1:] for r in catalog.sql(
        "select lightcurve_id, source_id, round(match_sep_arcsec, 3), n_sources_in_pixel, blended, n_good "
        "from lightcurves").fetchall()}
    assert rows["TIC1-s0006"] == ("a", 0.996, 2, True, 2992)  # 1" of RA at dec -5.4; b 15" off: one pixel
    assert rows["TIC2-s0006"] == ("c", 0.0, 1, False, 2992)
    assert rows["TIC3-s0006"] == (None, None, 0, False, 2992)   # no catalogue source there
    back = load_lightcurves(catalog, ["TIC2-s0006", "TIC1-s0006"])
    np.testing.assert_array_equal(back[0].flux, lcs[1].flux)
    np.testing.assert_array_equal(back[1].time, lcs[0].time)
    assert back[0].time.dtype == np.float64 and back[0].quality.dtype == np.int32
    again = store_lightcurves(catalog, lcs)
    assert again.added == [] and len(again.existing) == 3 and catalog.table_count("lightcurves") == 3
    with pytest.raises(BinarycatError, match="Unknown light curve"):
        load_lightcurves(catalog, ["TIC9-s0001"])


def test_orphan_light_curve_shards_are_found_and_removed(catalog):
    store_lightcurves(catalog, [make_lc(5, 20.0, 20.0)])
    stray = catalog.resolve("lightcurves/hpx5=00001/dead.parquet")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half written")
    assert orphan_shards(catalog) == [stray]
    remove_orphan_shards(catalog)
    assert not stray.exists() and load_lightcurves(catalog, ["TIC5-s0006"])[0].flux.size == 3000


def test_file_ingest_reports_bad_and_short_files_and_is_idempotent(catalog, tmp_path):
    add_sources(catalog, [("a", 83.8, -5.4)])
    folder = tmp_path / "tess"
    write_spoc_lightcurve(folder / spoc_filename(1, 6), make_lc(1, 83.8, -5.4))
    write_spoc_lightcurve(folder / "s2" / spoc_filename(2, 6), make_lc(2, 84.0, -5.0))
    write_spoc_lightcurve(folder / spoc_filename(3, 6), make_lc(3, 84.0, -5.0, n=1500))
    (folder / "corrupt.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    res = ingest_lightcurve_files(catalog, [folder])
    assert sorted(res.added) == ["TIC1-s0006", "TIC2-s0006"]
    assert res.unmatched == ["TIC2-s0006"]
    reasons = dict(res.failed)
    assert "at least 2000 are needed" in reasons[str(folder / spoc_filename(3, 6))]
    assert str(folder / "corrupt.fits") in reasons
    again = ingest_lightcurve_files(catalog, [folder])
    assert again.added == [] and sorted(again.existing) == ["TIC1-s0006", "TIC2-s0006"]
    with pytest.raises(BinarycatError, match="No light-curve files"):
        ingest_lightcurve_files(catalog, [tmp_path / "empty-dir-that-is-missing"][:0])


def test_in_memory_ingest_checks_good_points(catalog):
    res = ingest_lightcurves(catalog, [make_lc(7, 1.0, 1.0), make_lc(8, 1.0, 1.0, n=100)])
    assert res.added == ["TIC7-s0006"] and len(res.failed) == 1
    assert res.failed[0][1] == "has 97 good cadences (QUALITY == 0, finite flux); at least 2000 are needed"
