import duckdb
import pytest

from binarycat.catalog.flags import rebuild_binary_flags
from binarycat.catalog.schema import SCHEMA_VERSION
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError, CatalogVersionError

CONTRACT = {"sources", "surveys", "stamps", "labels", "models", "predictions", "binary_flags"}


def test_new_catalogue_has_contract_tables_and_version(tmp_path):
    with Catalog(tmp_path / "c") as cat:
        names = {r[0] for r in cat.sql("select table_name from information_schema.tables").fetchall()}
        assert CONTRACT <= names
        assert cat.schema_version == SCHEMA_VERSION
    for sub in ("stamps", "lightcurves", "models"):
        assert (tmp_path / "c" / sub).is_dir()
    assert (tmp_path / "c" / "catalog.duckdb").is_file()


def test_reopening_keeps_data(tmp_path):
    with Catalog(tmp_path / "c") as cat:
        cat.sql("insert into sources (source_id, ra, dec, healpix) values ('a', 1, 2, 3)")
    with Catalog(tmp_path / "c") as cat:
        assert cat.table_count("sources") == 1


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    with Catalog(tmp_path / "c") as cat:
        cat.sql("update meta set value = ? where key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
        cat.sql("insert into sources (source_id, ra, dec, healpix) values ('a', 1, 2, 3)")
    with pytest.raises(CatalogVersionError, match="newer"):
        Catalog(tmp_path / "c")
    con = duckdb.connect(str(tmp_path / "c" / "catalog.duckdb"), read_only=True)
    assert con.execute("select value from meta").fetchone()[0] == str(SCHEMA_VERSION + 1)
    assert con.execute("select count(*) from sources").fetchone()[0] == 1


def test_missing_catalogue_is_an_error_without_create(tmp_path):
    with pytest.raises(BinarycatError, match="No catalogue"):
        Catalog(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_read_only_refuses_writes(tmp_path):
    Catalog(tmp_path / "c").close()
    with Catalog(tmp_path / "c", read_only=True) as cat:
        with pytest.raises(duckdb.Error):
            cat.sql("insert into sources (source_id, ra, dec, healpix) values ('a', 1, 2, 3)")


def test_transaction_rolls_back_on_error(catalog):
    with pytest.raises(RuntimeError):
        with catalog.transaction() as con:
            con.execute("insert into sources (source_id, ra, dec, healpix) values ('a', 1, 2, 3)")
            raise RuntimeError("boom")
    assert catalog.table_count("sources") == 0


def test_binary_flags_shows_latest_prediction_per_source_and_survey(catalog):
    catalog.sql("insert into sources (source_id, ra, dec, healpix) values ('a', 10, 20, 0)")
    catalog.sql("""insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold, created_at)
                   values ('s1', 'm1', 'a', 'HST', 0.2, false, 0.5, '2026-01-01'),
                          ('s1', 'm2', 'a', 'HST', 0.9, true, 0.5, '2026-02-01'),
                          ('s2', 'm1', 'a', '2MASS', 0.1, false, 0.5, '2026-01-01')""")
    assert rebuild_binary_flags(catalog) == 2
    rows = catalog.sql("select survey, flag, p_binary, model_id, ra from binary_flags order by survey").fetchall()
    assert rows == [("2MASS", False, 0.1, "m1", 10.0), ("HST", True, 0.9, "m2", 10.0)]


def test_binary_flags_is_one_row_per_source_and_survey(catalog):
    catalog.sql("insert into sources (source_id, ra, dec, healpix) values ('a', 10, 20, 0)")
    from binarycat.catalog.flags import update_binary_flags

    for model, p in (("m1", 0.2), ("m2", 0.9)):
        with catalog.transaction() as con:
            con.execute("insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) "
                        "values ('s1', ?, 'a', 'HST', ?, ?, 0.5)", [model, p, p >= 0.5])
            update_binary_flags(con, model, ["s1"])
    assert catalog.sql("select model_id, p_binary, flag from binary_flags").fetchall() == [("m2", 0.9, True)]
    with catalog.transaction() as con:  # a second survey, single
        con.execute("insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) "
                    "values ('s2', 'm2', 'a', '2MASS', 0.1, false, 0.5)")
        update_binary_flags(con, "m2", ["s2"])
    row = catalog.sql("select n_surveys, n_surveys_binary, binary_in, p_binary from source_flags").fetchall()
    assert row == [(2, 1, "HST", {"2MASS": 0.1, "HST": 0.9})]
    with pytest.raises(duckdb.Error):  # the primary key keeps it one row per (source, survey)
        catalog.sql("insert into binary_flags values ('a', 'HST', 1, 1, true, 0.5, 'm3', 's1', now())")
