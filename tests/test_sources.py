"""Source lists in every format, column detection, sexagesimal parsing and validation."""

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from binarycat.catalog.sources import id_range_condition, import_sources
from binarycat.errors import BinarycatError


def _orion():
    return Table({"Seq": ["00222", "00223", "00224"], "RAJ2000": [83.8, 83.81, 83.82],
                  "DEJ2000": [-5.40, -5.41, -5.42], "Jmag": [11.5, 12.25, 13.0]})


@pytest.mark.parametrize("ext,fmt", [("csv", "ascii.csv"), ("fits", "fits"), ("xml", "votable"),
                                     ("parquet", "parquet")])
def test_every_format_imports_the_same_rows(catalog, tmp_path, ext, fmt):
    path = tmp_path / f"orion.{ext}"
    _orion().write(path, format=fmt)
    res = import_sources(catalog, path, id_col="Seq")
    assert (res.added, res.columns["ra"], res.columns["dec"]) == (3, "RAJ2000", "DEJ2000")
    rows = catalog.sql("select source_id, ra, dec, properties from sources order by 1").fetchall()
    assert [r[0] for r in rows] == ["00222", "00223", "00224"]  # leading zeros kept
    np.testing.assert_allclose([r[1] for r in rows], [83.8, 83.81, 83.82])
    assert json.loads(rows[1][3]) == {"Jmag": 12.25}
    assert import_sources(catalog, path, id_col="Seq").existing == 3  # idempotent


def test_sexagesimal_and_units(catalog, tmp_path):
    t = Table({"name": ["a", "b"], "ra": ["05:35:12.0", "05h35m12s"], "dec": ["-05:24:00", "-05d24m00s"]})
    t.write(tmp_path / "s.csv", format="ascii.csv")
    import_sources(catalog, tmp_path / "s.csv")
    rows = catalog.sql("select ra, dec from sources").fetchall()
    np.testing.assert_allclose(rows, [(83.8, -5.4), (83.8, -5.4)], atol=1e-9)
    q = Table({"id": ["r"], "RA_ICRS": [1.0] * u.rad, "DE_ICRS": [0.1] * u.rad})
    q.write(tmp_path / "rad.fits")
    import_sources(catalog, tmp_path / "rad.fits")
    ra, dec = catalog.sql("select ra, dec from sources where source_id = 'r'").fetchone()
    assert ra == pytest.approx(np.degrees(1.0)) and dec == pytest.approx(np.degrees(0.1))


@pytest.mark.parametrize("table,match", [
    ({"id": ["a", "a"], "ra": [1.0, 2.0], "dec": [0.0, 0.0]}, "appears twice"),
    ({"id": ["a"], "ra": [361.0], "dec": [0.0]}, "outside \\[0, 360\\)"),
    ({"id": ["a"], "ra": [1.0], "dec": [-91.0]}, "outside \\[-90, 90\\]"),
    ({"id": ["a"], "ra": [np.nan], "dec": [0.0]}, "non-finite|no ra/dec value"),
    ({"id": ["a"], "x": [1.0], "dec": [0.0]}, "Cannot find the RA column"),
])
def test_bad_tables_are_refused_whole(catalog, tmp_path, table, match):
    Table(table).write(tmp_path / "bad.fits")
    with pytest.raises(BinarycatError, match=match):
        import_sources(catalog, tmp_path / "bad.fits")
    assert catalog.table_count("sources") == 0


def test_unreadable_and_unknown_format(catalog, tmp_path):
    (tmp_path / "x.fits").write_bytes(b"not fits")
    with pytest.raises(BinarycatError, match="cannot be read"):
        import_sources(catalog, tmp_path / "x.fits")
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(BinarycatError, match="unknown table format"):
        import_sources(catalog, tmp_path / "x.xlsx")
    with pytest.raises(BinarycatError, match="No column 'nope'"):
        _orion().write(tmp_path / "o.csv", format="ascii.csv")
        import_sources(catalog, tmp_path / "o.csv", ra_col="nope")


def test_id_ranges_compare_ids_as_numbers(catalog, tmp_path):
    ids = ["09999", "10000", "10001", "14499", "14500", "100000", "830000", "orion-7"]
    Table({"id": ids, "ra": [83.8] * len(ids), "dec": [-5.4] * len(ids)}).write(tmp_path / "s.fits")
    import_sources(catalog, tmp_path / "s.fits")

    def selected(spec):
        return {r[0] for r in catalog.sql(f"select source_id from sources s where {id_range_condition(spec)}")
                .fetchall()}

    as_text = {r[0] for r in catalog.sql("select source_id from sources s "
                                         "where s.source_id >= '10000' and s.source_id < '14500'").fetchall()}
    assert "100000" in as_text  # the trap --ids avoids
    assert selected("10000-14499") == {"10000", "10001", "14499"}
    assert selected("9999, 830000-830999") == {"09999", "830000"}
    assert selected("0-10000000") == set(ids) - {"orion-7"}


@pytest.mark.parametrize("spec", ["", "10-5", "a-b", "-3", "1-2-3", "5,,6", "1.5-3"])
def test_bad_id_ranges_are_refused(spec):
    with pytest.raises(BinarycatError, match="--ids takes ranges FROM-TO"):
        id_range_condition(spec)
