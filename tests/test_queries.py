import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from binarycat.catalog.flags import rebuild_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError, QueryError
from binarycat.ingest.surveys import sync_survey_table
from binarycat.queries.export import write_result
from binarycat.queries.runner import list_queries, run_query
from conftest import add_sources


@pytest.fixture
def flagged(tmp_path):
    path = tmp_path / "cat"
    with Catalog(path) as cat:
        sync_survey_table(cat)
        add_sources(cat, [("a", 83.8, -5.4), ("b", 83.9, -5.3), ("c", 84.0, -5.2)])
        cat.sql("""insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) values
            ('1', 'm', 'a', 'HST', 0.95, true, 0.5), ('2', 'm', 'a', '2MASS', 0.10, false, 0.5),
            ('3', 'm', 'b', 'HST', 0.70, true, 0.5), ('4', 'm', 'b', 'PanSTARRS', 0.80, true, 0.5),
            ('5', 'm', 'c', 'HST', 0.20, false, 0.5)""")
        rebuild_binary_flags(cat)
    return path


def test_named_queries_have_descriptions():
    names = {q.name: q for q in list_queries()}
    assert "candidates" in names
    assert all(q.description for q in names.values())
    assert "min_surveys" in names["candidates"].params


def test_candidates_is_wide_with_one_probability_column_per_survey(flagged):
    t = run_query(flagged, "candidates").to_pylist()
    assert [r["source_id"] for r in t] == ["b", "a"]  # most surveys first
    b, a = t
    assert b["n_surveys_binary"] == 2 and b["p_HST"] == 0.70 and b["p_PanSTARRS"] == 0.80
    assert a["p_2MASS"] == 0.10 and a["p_PanSTARRS"] is None and a["binary_in"] == "HST"
    assert [r["source_id"] for r in run_query(flagged, "candidates", {"min_surveys": "2"}).to_pylist()] == ["b"]


def test_raw_sql_and_bad_sql(flagged):
    assert run_query(flagged, "select count(*) as n from binary_flags").to_pylist() == [{"n": 5}]
    with pytest.raises(QueryError, match="Query failed") as err:
        run_query(flagged, "select nonsense from nowhere")
    assert "\n" not in str(err.value)


def test_unknown_named_query_and_parameter(flagged):
    with pytest.raises(BinarycatError, match="named queries are"):
        run_query(flagged, "candidatez")
    with pytest.raises(BinarycatError, match="no parameter"):
        run_query(flagged, "candidates", {"k": "2"})


@pytest.mark.parametrize("sql", ["delete from sources", "drop table sources",
                                 "insert into sources (source_id, ra, dec, healpix) values ('z', 1, 1, 1)"])
def test_queries_are_read_only(flagged, sql):
    with pytest.raises(QueryError, match="read-only"):
        run_query(flagged, sql)
    assert run_query(flagged, "select count(*) as n from sources").to_pylist() == [{"n": 3}]


def test_export_formats_round_trip(flagged, tmp_path):
    table = run_query(flagged, "select source_id, ra, dec, p_binary from binary_flags order by 1, p_binary")
    write_result(table, "csv", tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == '"source_id","ra","dec","p_binary"'
    write_result(table, "json", tmp_path / "r.json")
    assert len(json.loads((tmp_path / "r.json").read_text())) == 5
    write_result(table, "parquet", tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").equals(table)
    for fmt, ext in (("fits", "fits"), ("votable", "xml")):
        write_result(table, fmt, tmp_path / f"r.{ext}")
        back = Table.read(tmp_path / f"r.{ext}")
        assert str(back["ra"].unit) == "deg"
        np.testing.assert_allclose(back["p_binary"], table.column("p_binary").to_numpy())
    with pytest.raises(BinarycatError, match="--output"):
        write_result(table, "parquet", None)
