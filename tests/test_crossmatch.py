"""The zones join against astropy's search_around_sky, and the stored cross-match."""

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binarycat.catalog.crossmatch import crossmatch, zones_join
from binarycat.catalog.schema import _V1, SCHEMA_VERSION
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from conftest import add_sources


def _astropy_pairs(ra1, dec1, ra2, dec2, radius_arcsec):
    c1, c2 = SkyCoord(ra1 * u.deg, dec1 * u.deg), SkyCoord(ra2 * u.deg, dec2 * u.deg)
    i, j, sep, _ = search_around_sky(c1, c2, radius_arcsec * u.arcsec)
    return {(int(a), int(b)): s for a, b, s in zip(i, j, sep.arcsec)}


def _zones_pairs(ra1, dec1, ra2, dec2, radius_arcsec):
    con = duckdb.connect()
    con.register("a", pa.table({"id": [str(i) for i in range(len(ra1))], "ra": ra1, "dec": dec1}))
    con.register("b", pa.table({"id": [str(i) for i in range(len(ra2))], "ra": ra2, "dec": dec2}))
    rows = zones_join(con, "a", "b", radius_arcsec).fetchall()
    return {(int(r[0]), int(r[1])): r[-1] for r in rows}


def _assert_same(ours, theirs, radius):
    # a pair within 1e-9 of the radius may fall either side of it in two correct formulas
    differ = set(ours) ^ set(theirs)
    border = {p for p in differ if abs((ours.get(p) or theirs.get(p)) - radius) <= 1e-9 * max(radius, 1)}
    assert differ == border, sorted(differ - border)[:5]
    for p in set(ours) & set(theirs):
        assert ours[p] == pytest.approx(theirs[p], rel=1e-7, abs=1e-9)


regions = st.sampled_from(["wrap", "north_pole", "south_pole", "field", "anywhere"])


def _points(rng, n, region, radius_deg):
    if region == "wrap":
        ra = np.mod(rng.uniform(-3 * radius_deg, 3 * radius_deg, n), 360.0)
        dec = rng.uniform(-5 * radius_deg, 5 * radius_deg, n)
    elif region in ("north_pole", "south_pole"):
        ra = rng.uniform(0, 360, n)
        dec = 90 - rng.uniform(0, 4 * radius_deg, n)
        dec = dec if region == "north_pole" else -dec
    elif region == "field":
        ra = 83.8 + rng.uniform(-10 * radius_deg, 10 * radius_deg, n)
        dec = -5.4 + rng.uniform(-10 * radius_deg, 10 * radius_deg, n)
    else:
        ra = rng.uniform(0, 360, n)
        dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return np.clip(ra, 0, np.nextafter(360.0, 0)), np.clip(dec, -90, 90)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(region=regions, radius=st.floats(0.5, 7200.0), n1=st.integers(1, 120), n2=st.integers(1, 120),
       seed=st.integers(0, 2**32 - 1))
def test_pairs_identical_to_astropy(region, radius, n1, n2, seed):
    rng = np.random.default_rng(seed)
    r_deg = radius / 3600.0
    ra1, dec1 = _points(rng, n1, region, r_deg)
    ra2, dec2 = _points(rng, n2, region, r_deg)
    _assert_same(_zones_pairs(ra1, dec1, ra2, dec2, radius), _astropy_pairs(ra1, dec1, ra2, dec2, radius), radius)


def test_exact_pole_and_wrap_cases():
    ra1 = np.array([0.0, 359.9999, 0.0, 123.0, 180.0])
    dec1 = np.array([90.0, 0.0, -90.0, 89.9999, 45.0])
    ra2 = np.array([200.0, 0.0001, 17.0, 303.0, 180.0])
    dec2 = np.array([89.9999, 0.0, -89.9999, 89.9999, 45.0])
    ours = _zones_pairs(ra1, dec1, ra2, dec2, 1.0)
    assert ours.keys() == _astropy_pairs(ra1, dec1, ra2, dec2, 1.0).keys()
    assert (1, 1) in ours and (0, 0) in ours and (2, 2) in ours and (4, 4) in ours


def test_large_radius_whole_sky_against_astropy():
    rng = np.random.default_rng(1)
    ra1, dec1 = _points(rng, 300, "anywhere", 0)
    ra2, dec2 = _points(rng, 300, "anywhere", 0)
    radius = 10 * 3600.0
    _assert_same(_zones_pairs(ra1, dec1, ra2, dec2, radius), _astropy_pairs(ra1, dec1, ra2, dec2, radius), radius)


def test_bad_radius():
    with pytest.raises(BinarycatError, match="positive"):
        zones_join(duckdb.connect(), "a", "b", 0)


@pytest.fixture
def sources_catalog(catalog):
    add_sources(catalog, [("s1", 83.80, -5.40), ("s2", 83.80 + 2 / 3600, -5.40), ("s3", 10.0, 10.0)])
    return catalog


def test_crossmatch_stores_all_or_nearest_pairs_and_replaces(sources_catalog, tmp_path):
    cat = sources_catalog
    ext = tmp_path / "ext.csv"
    ext.write_text("name,RAJ2000,DEJ2000\nE1,83.8,-5.4\nE2,200,40\n")
    res = crossmatch(cat, ext, 3.0, name="gaia")
    assert (res.n_pairs, res.n_external, res.n_matched_external, res.n_matched_sources) == (2, 2, 1, 2)
    rows = cat.sql("select source_id, external_id, round(sep_arcsec, 3) from crossmatches "
                   "where name = 'gaia' order by 1").fetchall()
    assert rows[0] == ("s1", "E1", 0.0) and rows[1][:2] == ("s2", "E1") and rows[1][2] == pytest.approx(1.991, abs=1e-3)
    res = crossmatch(cat, ext, 3.0, name="gaia", nearest=True)
    assert res.n_pairs == 1
    assert cat.sql("select count(*) from crossmatches where name = 'gaia'").fetchone()[0] == 1
    assert cat.sql("select mode, n_pairs from crossmatch_runs where name = 'gaia'").fetchone() == ("nearest", 1)
    with pytest.raises(BinarycatError, match="identifier"):
        crossmatch(cat, ext, 3.0, name="drop table x")


def test_crossmatch_streams_parquet(sources_catalog, tmp_path):
    path = tmp_path / "ext.parquet"
    pq.write_table(pa.table({"id": [1, 2], "ra": [83.8, 10.0], "dec": [-5.4, 10.0 + 0.5 / 3600]}), path)
    res = crossmatch(sources_catalog, path, 1.0, name="pq")
    assert res.n_pairs == 2
    pq.write_table(pa.table({"id": [1], "ra": [400.0], "dec": [0.0]}), tmp_path / "bad.parquet")
    with pytest.raises(BinarycatError, match="out-of-range"):
        crossmatch(sources_catalog, tmp_path / "bad.parquet", 1.0, name="bad")
    assert sources_catalog.sql("select count(*) from crossmatches where name = 'pq'").fetchone()[0] == 2


def test_version_1_catalogue_is_migrated(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    con = duckdb.connect(str(path / "catalog.duckdb"))
    con.execute(_V1)
    con.execute("insert into meta values ('schema_version', '1')")
    con.execute("insert into sources (source_id, ra, dec, healpix) values ('a', 1, 2, 3)")
    con.execute("insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) "
                "values ('s', 'm', 'a', 'HST', 0.8, true, 0.5)")
    assert con.execute("select table_type from information_schema.tables "
                       "where table_name = 'binary_flags'").fetchone()[0] == "VIEW"
    con.close()
    with Catalog(path) as cat:
        assert cat.schema_version == SCHEMA_VERSION
        assert cat.table_count("crossmatches") == 0 and cat.table_count("sources") == 1
        assert cat.sql("select table_type from information_schema.tables "
                       "where table_name = 'binary_flags'").fetchone()[0] == "BASE TABLE"
        assert cat.sql("select source_id, survey, p_binary from binary_flags").fetchall() == [("a", "HST", 0.8)]
