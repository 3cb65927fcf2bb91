import numpy as np
import pytest
from astropy.io import fits

from binarycat.catalog.arrays import load_stamp_arrays
from binarycat.errors import BadFitsError, BinarycatError
from binarycat.ingest.fits_io import read_image
from binarycat.ingest.stacking import group_by_prefix, normalise, split_name, stack_images
from binarycat.ingest.stamps import ingest_fits
from conftest import add_sources, write_stamp

RA, DEC = 83.82, -5.39


def test_split_name_and_grouping(tmp_path):
    names = ["00222_PanSTARRS_g.fits", "00222_PanSTARRS_r.fits", "00223_PanSTARRS_g.fits", "lone.fits"]
    paths = [tmp_path / n for n in names]
    assert split_name(paths[0]) == ("00222_PanSTARRS", "g")
    groups = group_by_prefix(paths)
    assert {k: len(v) for k, v in groups.items()} == {"00222_PanSTARRS": 2, "00223_PanSTARRS": 1, "lone": 1}


def test_stack_of_same_grid_filters_is_the_mean_signal_to_noise_map(tmp_path):
    g = read_image(write_stamp(tmp_path / "s_PanSTARRS_g.fits", RA, DEC, seed=1))
    r = read_image(write_stamp(tmp_path / "s_PanSTARRS_r.fits", RA, DEC, seed=2))
    stack, wcs = stack_images([g, r])
    expected = (normalise(g.data) + normalise(r.data)) / 2
    np.testing.assert_allclose(stack, expected, rtol=1e-6, atol=1e-6)
    assert stack.dtype == np.float32
    assert abs(float(np.median(stack))) < 0.2  # background removed
    peak = np.unravel_index(np.argmax(stack), stack.shape)
    assert all(19 <= p <= 20 for p in peak)  # the star sits at the centre, pixel 19.5


def test_filters_on_different_grids_are_reprojected_onto_the_finest(tmp_path):
    offsets = ((1.5, 0.0, 3000.0),)  # a star 1.5" east... of the centre in pixel x
    fine = read_image(write_stamp(tmp_path / "s_X_a.fits", RA, DEC, scale=0.25, n=40, offsets=offsets))
    coarse = read_image(write_stamp(tmp_path / "s_X_b.fits", RA, DEC, scale=0.5, n=20, offsets=offsets))
    stack, wcs = stack_images([coarse, fine])
    assert stack.shape == (40, 40)
    peak = np.unravel_index(np.nanargmax(stack), stack.shape)
    assert abs(peak[1] - (19.5 + 1.5 / 0.25)) <= 1 and abs(peak[0] - 19.5) <= 1


def test_bad_fits_each_get_a_reason(tmp_path):
    good = write_stamp(tmp_path / "good.fits", RA, DEC)
    blob = good.read_bytes()
    cases = {
        "truncated.fits": (lambda p: p.write_bytes(blob[: len(blob) // 2]), "truncated"),
        "html.fits": (lambda p: p.write_bytes(b"<html>500 Internal Server Error</html>"), "not a FITS"),
        "empty.fits": (lambda p: p.write_bytes(b""), "empty"),
        "nan.fits": (lambda p: fits.PrimaryHDU(np.full((9, 9), np.nan, np.float32)).writeto(p), "NaN"),
        "cube.fits": (lambda p: fits.PrimaryHDU(np.random.rand(3, 9, 9).astype(np.float32)).writeto(p), "2-D"),
        "blank.fits": (lambda p: fits.PrimaryHDU(np.zeros((9, 9), np.float32)).writeto(p), "blank"),
        "header_only.fits": (lambda p: fits.PrimaryHDU().writeto(p), "no image"),
    }
    for name, (make, reason) in cases.items():
        make(tmp_path / name)
        with pytest.raises(BadFitsError, match=reason):
            read_image(tmp_path / name)
    with pytest.raises(BadFitsError, match="does not exist"):
        read_image(tmp_path / "missing.fits")


def test_ingest_stores_good_files_reports_bad_ones_and_adds_nothing_twice(catalog, tmp_path):
    add_sources(catalog, [("00001", RA, DEC), ("00002", RA + 0.01, DEC)])
    d = tmp_path / "ps"
    write_stamp(d / "00001_PanSTARRS_g.fits", RA, DEC, seed=1)
    write_stamp(d / "00001_PanSTARRS_r.fits", RA, DEC, seed=2)
    write_stamp(d / "00002_PanSTARRS_g.fits", RA + 0.01, DEC, seed=3)
    (d / "00002_PanSTARRS_r.fits").write_bytes(b"\x00garbage")
    fits.PrimaryHDU(np.full((9, 9), np.nan, np.float32)).writeto(d / "00003_PanSTARRS_g.fits")
    rep = ingest_fits(catalog, [d], "ps1")
    assert rep.stored == 2
    reasons = {p.split("/")[-1]: r for p, r in rep.problems}
    assert set(reasons) == {"00002_PanSTARRS_r.fits", "00003_PanSTARRS_g.fits"}
    assert "NaN" in reasons["00003_PanSTARRS_g.fits"]
    rows = catalog.sql("select source_id, survey, filters from stamps order by source_id").fetchall()
    assert rows == [("00001", "PanSTARRS", ["g", "r"]), ("00002", "PanSTARRS", ["g"])]
    before = sorted(p.name for p in (catalog.path / "stamps").rglob("*.parquet"))
    again = ingest_fits(catalog, [d], "PanSTARRS")
    assert again.stored == 0 and again.already_present == 2
    assert catalog.table_count("stamps") == 2
    assert sorted(p.name for p in (catalog.path / "stamps").rglob("*.parquet")) == before


def test_stamps_match_by_position_and_unmatched_are_reported(catalog, tmp_path):
    add_sources(catalog, [("star-a", RA, DEC)])
    write_stamp(tmp_path / "cutout1_HST_V.fits", RA + 0.3 / 3600, DEC, scale=0.05, n=60, fwhm=0.1)
    write_stamp(tmp_path / "faraway_HST_V.fits", RA + 0.1, DEC, scale=0.05, n=60, fwhm=0.1)
    rep = ingest_fits(catalog, [tmp_path], "HST")
    assert rep.stored == 1
    assert [u[0] for u in rep.unmatched] == ["faraway_HST"]
    assert catalog.sql("select source_id from stamps").fetchone()[0] == "star-a"


def test_ingest_uses_header_id(catalog, tmp_path):
    add_sources(catalog, [("X1", RA, DEC)])
    write_stamp(tmp_path / "whatever_2MASS_J.fits", RA + 0.5, DEC, scale=1.0, n=10, fwhm=2.7,
                header={"SRCID": "X1"})
    rep = ingest_fits(catalog, [tmp_path], "2MASS")
    assert rep.stored == 1 and rep.unmatched == []


def test_ingest_unknown_survey_and_empty_catalogue(catalog, tmp_path):
    write_stamp(tmp_path / "a_X_g.fits", RA, DEC)
    with pytest.raises(BinarycatError, match="known surveys"):
        ingest_fits(catalog, [tmp_path], "Gaia")
    with pytest.raises(BinarycatError, match="no sources"):
        ingest_fits(catalog, [tmp_path], "PS1")


def test_stored_stamp_is_the_stack(catalog, tmp_path):
    add_sources(catalog, [("00001", RA, DEC)])
    g = write_stamp(tmp_path / "00001_SDSS9_g.fits", RA, DEC, scale=0.396, n=25, fwhm=1.4, seed=5)
    r = write_stamp(tmp_path / "00001_SDSS9_r.fits", RA, DEC, scale=0.396, n=25, fwhm=1.4, seed=6)
    ingest_fits(catalog, [g, r], "SDSS")
    (sid,) = catalog.sql("select stamp_id from stamps").fetchone()
    stored = load_stamp_arrays(catalog, [sid])[0]
    expected, _ = stack_images([read_image(g), read_image(r)])
    assert stored.tobytes() == expected.tobytes()


def test_worker_processes_store_the_same_stamps_and_report(tmp_path, monkeypatch):
    from binarycat.catalog.store import Catalog
    from binarycat.ingest import stamps as stamps_module

    monkeypatch.setattr(stamps_module, "_MIN_GROUPS_PER_WORKER", 1)  # workers even for a handful of groups
    d = tmp_path / "hst"
    sources = []
    for i in range(10):
        sid, ra = f"{i:05d}", RA + i * 0.01
        sources.append((sid, ra, DEC))
        for band, seed in (("V", 2 * i), ("I", 2 * i + 1)):
            write_stamp(d / f"{sid}_HST_{band}.fits", ra, DEC, scale=0.05, n=30, fwhm=0.1, seed=seed)
    (d / "00003_HST_I.fits").write_bytes(b"\x00garbage")  # a bad file: its group keeps the good filter
    write_stamp(d / "nowhere_HST_V.fits", RA + 1.0, DEC, scale=0.05, n=30, fwhm=0.1)  # no source there

    def run(workers):
        cat = Catalog(tmp_path / f"cat{workers}", create=True)
        add_sources(cat, sources)
        rep = ingest_fits(cat, [d], "HST", workers=workers)
        rows = cat.sql("select source_id, survey, filters, origin, ra, dec, pixel_scale_arcsec, stamp_id "
                       "from stamps order by source_id").fetchall()
        arrays = [a.tobytes() for a in load_stamp_arrays(cat, [r[-1] for r in rows])]
        again = ingest_fits(cat, [d], "HST", workers=workers)
        count = cat.table_count("stamps")
        cat.close()
        return rep, rows, arrays, again, count

    serial, parallel = run(1), run(2)
    rep, rows, arrays, again, count = parallel
    assert (rep.stored, len(rep.problems), [u[0] for u in rep.unmatched]) == (10, 1, ["nowhere_HST"])
    assert rows[3][2] == ["V"]
    assert rep.problems == serial[0].problems and rep.unmatched == serial[0].unmatched
    assert rows == serial[1]
    assert arrays == serial[2]
    assert again.stored == 0 and again.already_present == 10 and count == 10
