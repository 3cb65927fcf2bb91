"""The named queries on a small catalogue whose expected answers were worked out by hand.

Real surveys and their registry FWHMs (arcsec): HST 0.08, PanSTARRS 1.1, SDSS9 1.4, ZTF 2.0,
2MASS 2.7, NEOWISER 6.1, unWISE 6.1; "LocalScope" is not in the registry (no FWHM).

Stamps (a survey covers a source when it has a stamp of it) and latest predictions:

    source  stamps in                                  latest prediction (p, flag)
    a       PanSTARRS (two stamps), SDSS9, 2MASS       PS1 .9 B, SDSS9 .8 B, 2MASS .7 B
    b       HST, PanSTARRS, 2MASS, unWISE              HST .1 S, PS1 .3 S (an older model said .9 B),
                                                       2MASS .6 B, unWISE .55 B
    c       HST, SDSS9                                 HST .95 B, SDSS9 .2 S, and 2MASS .9 B
                                                       with no stamp: 2MASS does not cover c
    d       unWISE, NEOWISER                           unWISE .8 B, NEOWISER .3 S (equal FWHM)
    e       2MASS, PanSTARRS, LocalScope               2MASS .65 B, PS1 .4 S, LocalScope .2 S
    f       SDSS9, PanSTARRS                           SDSS9 .7 B, no PanSTARRS prediction
    g       none                                       none (one ZTF label)
    h       HST                                        HST .05 S
"""

from __future__ import annotations

import pytest

from binarycat.catalog.flags import rebuild_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError, QueryError
from binarycat.ingest.surveys import sync_survey_table
from binarycat.queries.runner import list_queries, run_query
from conftest import add_sources

T_OLD, T_MID, T_NEW = "2024-01-01 00:00:00", "2024-03-01 00:00:00", "2024-06-01 00:00:00"

STAMPS = [  # stamp_id, source_id, survey
    ("a-ps1", "a", "PanSTARRS"), ("a-ps1-refetch", "a", "PanSTARRS"), ("a-sdss", "a", "SDSS9"),
    ("a-2m", "a", "2MASS"),
    ("b-hst", "b", "HST"), ("b-ps1", "b", "PanSTARRS"), ("b-2m", "b", "2MASS"), ("b-uw", "b", "unWISE"),
    ("c-hst", "c", "HST"), ("c-sdss", "c", "SDSS9"),
    ("d-uw", "d", "unWISE"), ("d-neo", "d", "NEOWISER"),
    ("e-2m", "e", "2MASS"), ("e-ps1", "e", "PanSTARRS"), ("e-loc", "e", "LocalScope"),
    ("f-sdss", "f", "SDSS9"), ("f-ps1", "f", "PanSTARRS"),
    ("h-hst", "h", "HST"),
]

PREDICTIONS = [  # stamp_id, model_id, source_id, survey, p_binary, flag, created_at
    ("a-ps1", "m1", "a", "PanSTARRS", 0.9, True, T_MID),
    ("a-sdss", "m1", "a", "SDSS9", 0.8, True, T_MID),
    ("a-2m", "m1", "a", "2MASS", 0.7, True, T_MID),
    ("b-hst", "m1", "b", "HST", 0.1, False, T_MID),
    # The latest PanSTARRS prediction of b changed: the older model (whose id sorts last, so a
    # tie-break on model_id alone would pick it) said binary, the newer one says single.
    ("b-ps1", "model-z", "b", "PanSTARRS", 0.9, True, T_OLD),
    ("b-ps1", "model-a", "b", "PanSTARRS", 0.3, False, T_NEW),
    ("b-2m", "m1", "b", "2MASS", 0.6, True, T_MID),
    ("b-uw", "m1", "b", "unWISE", 0.55, True, T_MID),
    ("c-hst", "m1", "c", "HST", 0.95, True, T_MID),
    ("c-sdss", "m1", "c", "SDSS9", 0.2, False, T_MID),
    ("c-2m-gone", "m1", "c", "2MASS", 0.9, True, T_MID),  # no stamp row: 2MASS does not cover c
    ("d-uw", "m1", "d", "unWISE", 0.8, True, T_MID),
    ("d-neo", "m1", "d", "NEOWISER", 0.3, False, T_MID),
    ("e-2m", "m1", "e", "2MASS", 0.65, True, T_MID),
    ("e-ps1", "m1", "e", "PanSTARRS", 0.4, False, T_MID),
    ("e-loc", "m1", "e", "LocalScope", 0.2, False, T_MID),
    ("f-sdss", "m1", "f", "SDSS9", 0.7, True, T_MID),
    ("h-hst", "m1", "h", "HST", 0.05, False, T_MID),
]

LABELS = [  # source_id, survey, label, labeller, created_at
    ("a", "PanSTARRS", 1, "alice", T_MID),
    ("b", "PanSTARRS", 1, "alice", T_OLD),  # superseded by bob's later label
    ("b", "PanSTARRS", 0, "bob", T_NEW),
    ("b", "HST", 1, "alice", T_MID),
    ("c", "SDSS9", 1, "alice", T_MID),
    ("d", "unWISE", 0, "alice", T_MID),
    ("e", "2MASS", 1, "alice", T_MID),
    ("f", "PanSTARRS", 0, "alice", T_MID),  # no PanSTARRS prediction of f
    ("g", "ZTF", 1, "alice", T_MID),  # a survey with a label and nothing else
]


@pytest.fixture(scope="module")
def cat_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("named") / "cat"
    with Catalog(path) as cat:
        sync_survey_table(cat)
        add_sources(cat, [(s, 10.0 + i, -20.0 - i) for i, s in enumerate("abcdefgh")])
        cat.con.executemany(
            "insert into stamps (stamp_id, source_id, survey, content_hash, shard, shard_row, height, width) "
            "values (?, ?, ?, ?, 'stamps/none.parquet', ?, 32, 32)",
            [(sid, src, sv, "hash-" + sid, i) for i, (sid, src, sv) in enumerate(STAMPS)],
        )
        cat.con.executemany(
            "insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold, created_at) "
            "values (?, ?, ?, ?, ?, ?, 0.5, ?::TIMESTAMP)",
            PREDICTIONS,
        )
        cat.con.executemany(
            "insert into labels (source_id, survey, label, labeller, created_at) values (?, ?, ?, ?, ?::TIMESTAMP)",
            LABELS,
        )
        cat.sql("insert into splits values ('m1', 'c', 'test'), ('m1', 'd', 'train'), ('m1', 'a', 'train')")
        rebuild_binary_flags(cat)
    return path


def rows(cat_dir, name, params=None):
    return run_query(cat_dir, name, params).to_pylist()


# -- consensus ------------------------------------------------------------------------------

def _consensus(sid, n_cov, n_bin, binary_in, mean_p):
    i = "abcdefgh".index(sid)
    return {"source_id": sid, "ra": 10.0 + i, "dec": -20.0 - i, "n_covering": n_cov, "n_binary": n_bin,
            "fraction_binary": n_bin / n_cov, "binary_in": binary_in, "mean_p_binary": pytest.approx(mean_p)}


CONSENSUS = {
    "a": _consensus("a", 3, 3, "2MASS,PanSTARRS,SDSS9", (0.9 + 0.8 + 0.7) / 3),  # two PS1 stamps, one survey
    "b": _consensus("b", 4, 2, "2MASS,unWISE", (0.1 + 0.3 + 0.6 + 0.55) / 4),  # latest PS1 only
    "c": _consensus("c", 2, 1, "HST", (0.95 + 0.2) / 2),  # the uncovered 2MASS flag does not count
    "d": _consensus("d", 2, 1, "unWISE", (0.8 + 0.3) / 2),
    "e": _consensus("e", 3, 1, "2MASS", (0.65 + 0.4 + 0.2) / 3),
    "f": _consensus("f", 2, 1, "SDSS9", 0.7),  # covered by PanSTARRS, not predicted there
    "h": _consensus("h", 1, 0, "", 0.05),
}


def test_consensus_default_k_is_two(cat_dir):
    assert rows(cat_dir, "consensus") == [CONSENSUS["a"], CONSENSUS["b"]]


@pytest.mark.parametrize("k, expected", [
    ("1", "abcdef"),  # as the CLI passes it: a string; ties on n_binary by source_id
    (1, "abcdef"),
    (3, "a"),
    (4, ""),
    (0, "abcdefh"),  # every covered source, h with no flag at all; g has no stamp
])
def test_consensus_k(cat_dir, k, expected):
    assert rows(cat_dir, "consensus", {"k": k}) == [CONSENSUS[s] for s in expected]


def test_consensus_rejects_a_k_that_is_not_an_integer(cat_dir):
    with pytest.raises(QueryError, match="k must be an integer"):
        run_query(cat_dir, "consensus", {"k": "two"})


# -- resolution_conflicts -------------------------------------------------------------------

def test_resolution_conflicts(cat_dir):
    got = rows(cat_dir, "resolution_conflicts")
    i = "abcdefgh".index
    expected = [
        # (source, binary survey, its FWHM, p, single survey, its FWHM, p); FWHM ratio in the comment
        ("b", "unWISE", 6.1, 0.55, "HST", 0.08, 0.1),        # 76.25
        ("b", "2MASS", 2.7, 0.6, "HST", 0.08, 0.1),          # 33.75
        ("b", "unWISE", 6.1, 0.55, "PanSTARRS", 1.1, 0.3),   # 5.55
        ("b", "2MASS", 2.7, 0.6, "PanSTARRS", 1.1, 0.3),     # 2.45, tied with e: by source_id
        ("e", "2MASS", 2.7, 0.65, "PanSTARRS", 1.1, 0.4),    # 2.45
    ]
    assert got == [
        {"source_id": s, "ra": 10.0 + i(s), "dec": -20.0 - i(s), "binary_survey": bs, "binary_fwhm_arcsec": bf,
         "binary_p": bp, "single_survey": ss, "single_fwhm_arcsec": sf, "single_p": sp}
        for s, bs, bf, bp, ss, sf, sp in expected
    ]
    # Not conflicts: c (the sharper HST says binary, SDSS9 single; its 2MASS flag has no stamp),
    # d (unWISE and NEOWISER have the same FWHM), a (no survey says single), b's superseded
    # PanSTARRS flag (would pair with HST), e's LocalScope (no FWHM).
    assert {r["source_id"] for r in got} == {"b", "e"}


# -- candidates -----------------------------------------------------------------------------

def test_candidates_on_the_scenario(cat_dir):
    t = run_query(cat_dir, "candidates")
    assert t.column_names == ["source_id", "ra", "dec", "n_surveys_binary", "binary_in", "p_2MASS", "p_HST",
                              "p_LocalScope", "p_NEOWISER", "p_PanSTARRS", "p_SDSS9", "p_unWISE"]
    got = t.to_pylist()
    # candidates has no notion of coverage: c's stamp-less 2MASS flag counts here.
    assert [(r["source_id"], r["n_surveys_binary"], r["binary_in"]) for r in got] == [
        ("a", 3, "2MASS,PanSTARRS,SDSS9"), ("b", 2, "2MASS,unWISE"), ("c", 2, "2MASS,HST"),
        ("d", 1, "unWISE"), ("e", 1, "2MASS"), ("f", 1, "SDSS9"),
    ]
    b = got[1]
    assert (b["p_HST"], b["p_PanSTARRS"], b["p_2MASS"], b["p_unWISE"], b["p_SDSS9"]) == (0.1, 0.3, 0.6, 0.55, None)
    assert got[4]["p_LocalScope"] == 0.2
    assert [r["source_id"] for r in rows(cat_dir, "candidates", {"min_surveys": "2"})] == ["a", "b", "c"]
    assert [r["source_id"] for r in rows(cat_dir, "candidates", {"min_surveys": 0})] == list("abcdef")
    with pytest.raises(QueryError, match="min_surveys must be an integer"):
        run_query(cat_dir, "candidates", {"min_surveys": "many"})


# -- survey_summary and label_disagreements -------------------------------------------------

def test_survey_summary(cat_dir):
    cols = ("survey", "fwhm_arcsec", "aperture_m", "n_stamps", "n_sources", "n_label_binary", "n_label_single",
            "n_predicted", "n_flagged")
    expected = [
        ("HST", 0.08, 2.4, 3, 3, 1, 0, 3, 1),
        ("PanSTARRS", 1.1, 1.8, 5, 4, 1, 2, 3, 1),  # b's latest label is bob's 0, latest prediction single
        ("SDSS9", 1.4, 2.5, 3, 3, 1, 0, 3, 2),
        ("ZTF", 2.0, 1.22, 0, 0, 1, 0, 0, 0),  # a label and nothing else
        ("2MASS", 2.7, 1.3, 3, 3, 1, 0, 4, 4),  # predictions include c's stamp-less one
        ("NEOWISER", 6.1, 0.4, 1, 1, 0, 0, 1, 0),  # same FWHM as unWISE: by name
        ("unWISE", 6.1, 0.4, 2, 2, 0, 1, 2, 2),
        ("LocalScope", None, None, 1, 1, 0, 0, 1, 0),  # not in the surveys table: last
    ]
    assert rows(cat_dir, "survey_summary") == [dict(zip(cols, r)) for r in expected]


def test_label_disagreements(cat_dir):
    cols = ("source_id", "survey", "label", "flag", "p_binary", "labeller", "model_id", "stamp_id", "split")
    expected = [
        ("b", "HST", 1, False, 0.1, "alice", "m1", "b-hst", None),  # |0.1 - 1| = 0.9
        ("c", "SDSS9", 1, False, 0.2, "alice", "m1", "c-sdss", "test"),  # 0.8, tied with d: by source_id
        ("d", "unWISE", 0, True, 0.8, "alice", "m1", "d-uw", "train"),  # 0.8
    ]
    # Not there: b's PanSTARRS (alice's superseded 1 and model-z's superseded flag both lose to
    # bob's 0 and model-a's single), f's PanSTARRS label (no prediction), a and e (agree).
    assert rows(cat_dir, "label_disagreements") == [dict(zip(cols, r)) for r in expected]


# -- the catalogue of queries ---------------------------------------------------------------

def test_every_named_query_has_a_description_and_its_parameters():
    queries = {q.name: q for q in list_queries()}
    assert {"candidates", "consensus", "resolution_conflicts", "survey_summary",
            "label_disagreements"} <= set(queries)
    for q in queries.values():
        assert len(q.description) > 40, q.name
        assert "param " not in q.description, q.name
    assert set(queries["consensus"].params) == {"k"} and "default 2" in queries["consensus"].params["k"]
    assert set(queries["candidates"].params) == {"min_surveys"}
    assert queries["resolution_conflicts"].params == {}


@pytest.mark.parametrize("name, params", [
    ("consensus", {"min_surveys": 2}),
    ("resolution_conflicts", {"k": 2}),
    ("candidates", {"k": 2}),
])
def test_unknown_parameter_is_refused(cat_dir, name, params):
    with pytest.raises(BinarycatError, match="no parameter"):
        run_query(cat_dir, name, params)


@pytest.mark.parametrize("name", ["candidates", "consensus", "resolution_conflicts", "survey_summary",
                                  "label_disagreements"])
def test_named_queries_run_on_an_empty_catalogue(tmp_path, name):
    Catalog(tmp_path / "empty").close()
    assert run_query(tmp_path / "empty", name).num_rows == 0
