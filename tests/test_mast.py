"""Fetching TESS light curves through astroquery.mast from a real loopback MAST stand-in."""

from __future__ import annotations

import pytest

from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.ingest.mast import COVERAGE_SURVEY, TessLightCurveArchive, fetch_lightcurves
from conftest import add_sources
from mast_server import MastServer, MastTarget

FAST = dict(backoff=0.001, retries=3, timeout=5)

# TIC 1001: two sectors at S1 (S1b 15" away shares its pixel); TIC 1002 at S2; TIC 1003 3" from S3;
# TIC 1004 has too few good cadences; S4 has no TESS target near it; TIC 2000 is not at MAST.
TARGETS = [
    MastTarget(1001, 4, 83.80, -5.40),
    MastTarget(1001, 5, 83.80, -5.40),
    MastTarget(1002, 6, 83.90, -5.30, tessmag=11.0),
    MastTarget(1003, 4, 84.00, -5.20 + 3.0 / 3600),
    MastTarget(1004, 7, 84.10, -5.10, n_points=1500),
]
SOURCES = [
    ("S1", 83.80, -5.40),
    ("S1b", 83.80, -5.40 + 15.0 / 3600),
    ("S2", 83.90, -5.30),
    ("S3", 84.00, -5.20),
    ("S4", 85.00, -4.00),
]


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "cat")
    add_sources(c, SOURCES)
    yield c
    c.close()


def rows(cat):
    return cat.sql("select tic_id, sector, source_id, blended, n_good from lightcurves "
                   "order by tic_id, sector").fetchall()


def coverage(cat):
    return dict(cat.sql("select source_id, covered from coverage where survey = ?", [COVERAGE_SURVEY]).fetchall())


def failures(cat):
    return sorted(cat.sql("select source_id, filter, attempts, reason from fetch_failures where survey = ?",
                          [COVERAGE_SURVEY]).fetchall())


def test_archive_finds_light_curves_only(tmp_path):
    with MastServer(TARGETS) as srv:
        archive = TessLightCurveArchive(srv.url, **FAST)
        found = archive.find(1001)
        assert [(p.tic_id, p.sector) for p in found] == [(1001, 4), (1001, 5)]
        assert all(p.filename.endswith("-s_lc.fits") and p.uri == f"mast:TESS/product/{p.filename}" for p in found)
        assert [p.size for p in found] == [len(srv.files[p.filename]) for p in found]
        assert archive.find(2000) == []
        near = archive.find_near(84.0, -5.2, 10.0)  # TIC 1003 is 3" away; the HST observation there is ignored
        assert [(p.tic_id, p.sector) for p in near] == [(1003, 4)]
        assert archive.find_near(85.0, -4.0, 10.0) == []
        path = archive.download(found[0], tmp_path / "dl")
        assert path == tmp_path / "dl" / "s0004" / found[0].filename
        assert path.read_bytes() == srv.files[found[0].filename]
        assert archive.download(found[0], tmp_path / "dl") == path  # complete: not fetched again
        assert (archive.downloads, archive.cached) == (1, 1)
        counts = srv.counts()
        assert counts["download"] == 1 and counts["head"] == 1
        assert archive.requests == sum(counts.values())
        # the server pages as MAST does and astroquery follows the pages
        table = archive._obs.query_criteria(obs_collection="TESS", pagesize=2)
        assert len(table) == len(TARGETS) and srv.counts()["invoke:Mast.Caom.Filtered"] == 5


def test_fetch_by_tic_stores_sectors_and_a_second_run_asks_nothing(cat, tmp_path):
    with MastServer(TARGETS) as srv:
        res = fetch_lightcurves(cat, tic_ids=[1001, "TIC 1002", 1001], server=srv.url, **FAST)
        assert res.ok and res.selected == 2 and res.downloads == 3
        assert sorted(res.added) == ["TIC1001-s0004", "TIC1001-s0005", "TIC1002-s0006"]
        assert res.requests == sum(srv.counts().values())
        assert rows(cat) == [(1001, 4, "S1", True, 2360), (1001, 5, "S1", True, 2360), (1002, 6, "S2", False, 2360)]
        assert sorted(res.blended) == ["TIC1001-s0004", "TIC1001-s0005"]
        assert coverage(cat) == {"TIC 1001": True, "TIC 1002": True}
        assert len(list((cat.path / "downloads" / "tess").rglob("*_lc.fits"))) == 3

        srv.reset_counts()
        again = fetch_lightcurves(cat, tic_ids=[1001, 1002], server=srv.url, **FAST)
        assert again.ok and again.added == [] and again.skipped == ["TIC 1001", "TIC 1002"]
        assert again.requests == 0 and srv.requests == []

        refresh = fetch_lightcurves(cat, tic_ids=[1001, 1002], refresh=True, server=srv.url, **FAST)
        assert refresh.ok and refresh.added == [] and sorted(refresh.existing) == sorted(res.added)
        assert refresh.downloads == 0 and srv.counts()["download"] == 0
    assert cat.sql("select count(*), count(distinct lightcurve_id) from lightcurves").fetchone() == (3, 3)


def test_tic_without_light_curves_is_recorded_and_not_asked_again(cat):
    with MastServer(TARGETS) as srv:
        res = fetch_lightcurves(cat, tic_ids=[2000], server=srv.url, **FAST)
        assert res.ok and res.not_covered == ["TIC 2000"] and res.added == []
        row = cat.sql("select covered, reason from coverage where source_id = 'TIC 2000'").fetchone()
        assert row[0] is False and "no TESS 2-min" in row[1]
        srv.reset_counts()
        again = fetch_lightcurves(cat, tic_ids=[2000], server=srv.url, **FAST)
        assert again.skipped == ["TIC 2000"] and srv.requests == []


def test_transient_faults_are_retried(cat):
    with MastServer(TARGETS, fail_first=2, error_once=True, truncate_once=True) as srv:
        srv.inject("invoke", "executing")
        srv.inject("download", "cut")
        srv.inject("invoke", "html500")
        srv.inject("head", "error500")
        srv.inject("invoke", "slow", seconds=1.5)  # longer than the timeout: the client gives up and retries
        res = fetch_lightcurves(cat, tic_ids=[1001, 1002, 1003], server=srv.url,
                                **{**FAST, "timeout": 0.5, "retries": 8})
        served = srv.faults_served
    assert res.ok, res.failed
    assert sorted(res.added) == ["TIC1001-s0004", "TIC1001-s0005", "TIC1002-s0006", "TIC1003-s0004"]
    for fault in ("error500", "html500", "status_error", "executing", "truncated", "cut", "slow"):
        assert served[fault] == (3 if fault == "error500" else 1), fault
    assert failures(cat) == []
    for path in (cat.path / "downloads" / "tess").rglob("*"):
        assert not path.name.endswith(".part")


def test_truncated_file_in_the_download_folder_is_fetched_again(cat, tmp_path):
    dl = tmp_path / "dl"
    with MastServer(TARGETS) as srv:
        archive = TessLightCurveArchive(srv.url, **FAST)
        s4, s5 = archive.find(1001)
        whole = srv.files[s4.filename]
        partial = archive.path_for(s4, dl)
        partial.parent.mkdir(parents=True)
        partial.write_bytes(whole[: len(whole) // 3])  # left by another tool, or an older run
        complete = archive.path_for(s5, dl)
        complete.parent.mkdir(parents=True)
        complete.write_bytes(srv.files[s5.filename])
        srv.reset_counts()
        res = fetch_lightcurves(cat, tic_ids=[1001], download_dir=dl, archive=archive)
        assert res.ok and sorted(res.added) == ["TIC1001-s0004", "TIC1001-s0005"]
        assert (res.downloads, res.cached) == (1, 1) and srv.counts()["download"] == 1
        assert partial.read_bytes() == whole


def test_permanent_failures_are_recorded_and_cleared_by_a_later_run(cat):
    with MastServer(TARGETS, fail_tics=[1002], fail_downloads=[(1001, 5)]) as srv:
        res = fetch_lightcurves(cat, tic_ids=[1001, 1002, 1003, 1004], server=srv.url, **{**FAST, "retries": 2})
    assert not res.ok and sorted(res.added) == ["TIC1001-s0004", "TIC1003-s0004"]
    reasons = dict(res.failed)
    assert set(reasons) == {"TIC 1001", "TIC 1002", "TIC 1004"}
    assert "sector 5: download failed after 3 attempts: MAST answered HTTP 500" in reasons["TIC 1001"]
    assert reasons["TIC 1002"].startswith("search failed after 3 attempts: MAST answered HTTP 500")
    assert "good cadences" in reasons["TIC 1004"]
    assert [f[:3] for f in failures(cat)] == [("TIC 1001", "s0005", 3), ("TIC 1002", "lc", 3),
                                             ("TIC 1004", "s0007", 1)]
    assert coverage(cat) == {"TIC 1003": True}  # only finished targets are marked done

    with MastServer(TARGETS) as srv:  # the service recovers
        res = fetch_lightcurves(cat, tic_ids=[1001, 1002, 1003, 1004], server=srv.url, **FAST)
        downloads = srv.counts()["download"]
    assert sorted(res.added) == ["TIC1001-s0005", "TIC1002-s0006"] and res.skipped == ["TIC 1003"]
    assert downloads == 2  # sector 4 of TIC 1001 is not downloaded again, nor is TIC 1004's file (kept)
    assert [f[:2] for f in failures(cat)] == [("TIC 1004", "s0007")]  # still too short; the rest cleared
    assert cat.sql("select count(*), count(distinct lightcurve_id) from lightcurves").fetchone() == (4, 4)


def test_interrupted_run_resumes_without_duplicates(cat):
    class Stop(KeyboardInterrupt):
        pass

    def stop_after_first(done, total, counts):
        if done == 1:
            raise Stop()

    with MastServer(TARGETS) as srv:
        with pytest.raises(Stop):
            fetch_lightcurves(cat, tic_ids=[1001, 1002, 1003], server=srv.url, progress=stop_after_first, **FAST)
        assert [r[:2] for r in rows(cat)] == [(1001, 4), (1001, 5)]  # the first target was committed
        res = fetch_lightcurves(cat, tic_ids=[1001, 1002, 1003], server=srv.url, **FAST)
        downloads = srv.counts()["download"]
    assert res.skipped == ["TIC 1001"] and sorted(res.added) == ["TIC1002-s0006", "TIC1003-s0004"]
    assert downloads == 4
    assert cat.sql("select count(*), count(distinct lightcurve_id) from lightcurves").fetchone() == (4, 4)


def test_where_selects_sources_and_searches_by_position(cat):
    with MastServer(TARGETS) as srv:
        res = fetch_lightcurves(cat, where="s.source_id in ('S1', 'S3', 'S4')", server=srv.url, **FAST)
        counts = srv.counts()
        assert res.ok and res.selected == 3 and res.not_covered == ["S4"]
        assert sorted(res.added) == ["TIC1001-s0004", "TIC1001-s0005", "TIC1003-s0004"]
        assert counts["invoke:Mast.Caom.Filtered.Position"] == 3 and counts["invoke:Mast.Caom.Filtered"] == 0
        assert [(r[0], r[2]) for r in rows(cat)] == [(1001, "S1"), (1001, "S1"), (1003, "S3")]
        assert coverage(cat) == {"S1": True, "S3": True, "S4": False}
        srv.reset_counts()
        again = fetch_lightcurves(cat, where="s.source_id in ('S1', 'S3', 'S4')", server=srv.url, **FAST)
        assert again.skipped == ["S1", "S3", "S4"] and srv.requests == []
        # every source (no condition): S1b finds TIC 1001 again (15" is within a 20" radius) and stores nothing new
        every = fetch_lightcurves(cat, radius_arcsec=20.0, keep_downloads=False, server=srv.url, **FAST)
    assert every.skipped == ["S1", "S3", "S4"] and every.selected == 5
    assert sorted(every.added) == ["TIC1002-s0006"] and "TIC1001-s0004" in every.existing
    kept = sorted(int(p.name[24:40]) for p in (cat.path / "downloads" / "tess").rglob("*_lc.fits"))
    assert kept == [1001, 1001, 1003]  # TIC 1002's file was deleted once stored


def test_bad_input_is_one_sentence(cat):
    for kwargs, words in [
        (dict(where="no_such_column > 1"), "--where is not a valid condition"),
        (dict(where="s.dec >"), "--where is not a valid condition"),
        (dict(tic_ids=["abc"]), "is not a TIC id"),
        (dict(tic_ids=[-5]), "is not a TIC id"),
        (dict(tic_ids=[]), "No TIC ids"),
        (dict(tic_ids=[1], where="true"), "not both"),
    ]:
        with pytest.raises(BinarycatError, match=words) as info:
            fetch_lightcurves(cat, server="http://127.0.0.1:9", **kwargs)
        assert "\n" not in str(info.value)
    assert cat.table_count("coverage") == 0 and cat.table_count("lightcurves") == 0


def test_unreachable_server_is_a_failure_not_a_traceback(cat):
    res = fetch_lightcurves(cat, tic_ids=[1001], server="http://127.0.0.1:9", **{**FAST, "retries": 1})
    assert not res.ok and res.failed[0][0] == "TIC 1001" and "cannot connect to MAST" in res.failed[0][1]
    assert [f[:3] for f in failures(cat)] == [("TIC 1001", "lc", 2)]
