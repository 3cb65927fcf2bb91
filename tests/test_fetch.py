"""Fetching through astroquery from a real loopback hips2fits server with injected faults."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from binarycat.catalog.sources import import_sources
from binarycat.catalog.store import Catalog
from binarycat.ingest.fetch import fetch_stamps
from binarycat.ingest.simulate import footprint_covers, simulate_sources
from hips_server import HipsServer

FAST = dict(backoff=0.005, retries=8, max_rps=None, workers=4, timeout=10)


@pytest.fixture(scope="module")
def sky():
    return simulate_sources(24, seed=11)


def _catalog(tmp_path, sky):
    cat = Catalog(tmp_path / "cat")
    import_sources(cat, sky["source_id", "ra", "dec"], origin="simulated")
    return cat


def test_every_stamp_lands_despite_failures_and_corrupt_answers(tmp_path, sky):
    cat = _catalog(tmp_path, sky)
    with HipsServer(sky, fail_rate=0.20, corrupt_rate=0.05, html_error_rate=0.0, fault_seed=3) as srv:
        rep = fetch_stamps(cat, "PS1", filters=["g", "r"], server=srv.url, **FAST)
        counts = srv.counts()
    assert rep.ok and rep.stored == len(sky) and rep.not_covered == 0
    assert counts["error500"] > 0 and (counts["truncated"] + counts["html200"]) > 0
    assert rep.requests == sum(counts.values())
    rows = cat.sql("select source_id, filters, height, width, pixel_scale_arcsec from stamps").fetchall()
    assert len(rows) == len(sky) and all(r[1] == ["g", "r"] and r[2:4] == (64, 64) for r in rows)
    assert rows[0][4] == pytest.approx(10 / 64)
    assert cat.table_count("fetch_failures") == 0
    print(f"requests per stored stamp: {rep.requests / rep.stored:.2f}, stamps/s {rep.stored / rep.seconds:.1f}")
    # a second run asks nothing and stores nothing
    with HipsServer(sky) as srv:
        again = fetch_stamps(cat, "PS1", filters=["g", "r"], server=srv.url, **FAST)
        assert again.selected == 0 and again.requests == 0 and len(srv.requests) == 0
    cat.close()


def test_fetched_stamp_has_the_source_at_its_centre(tmp_path, sky):
    cat = _catalog(tmp_path, sky)
    with HipsServer(sky) as srv:
        fetch_stamps(cat, "PS1", filters=["i"], server=srv.url, limit=3, **FAST)
    from binarycat.catalog.arrays import load_stamp_arrays

    ids = [r[0] for r in cat.sql("select stamp_id from stamps").fetchall()]
    assert len(ids) == 3
    for arr in load_stamp_arrays(cat, ids):
        y, x = np.unravel_index(np.nanargmax(arr), arr.shape)
        assert abs(y - 31.5) <= 8 and abs(x - 31.5) <= 8  # a binary's companion may outshine nothing farther
    cat.close()


def test_blank_answers_are_recorded_as_not_covered(tmp_path, sky):
    cat = _catalog(tmp_path, sky)
    covered = footprint_covers("HST", np.asarray(sky["ra"]), np.asarray(sky["dec"]))
    assert 0 < covered.sum() < len(sky)
    with HipsServer(sky) as srv:
        rep = fetch_stamps(cat, "HST", filters=["V"], server=srv.url, **FAST)
    assert rep.ok and rep.stored == covered.sum() and rep.not_covered == len(sky) - covered.sum()
    not_cov = {r[0] for r in cat.sql("select source_id from coverage where survey = 'HST' and not covered").fetchall()}
    assert not_cov == {s for s, c in zip(sky["source_id"], covered) if not c}
    with HipsServer(sky) as srv:  # not asked again
        again = fetch_stamps(cat, "HST", filters=["V"], server=srv.url, **FAST)
        assert again.selected == 0 and len(srv.requests) == 0
    cat.close()


def test_permanently_failing_filter_is_listed_and_retried_next_time(tmp_path, sky):
    cat = _catalog(tmp_path, sky)
    with HipsServer(sky, fail_hips=("CDS/P/PanSTARRS/DR1/r",)) as srv:
        rep = fetch_stamps(cat, "PS1", filters=["g", "r"], server=srv.url, limit=4, **{**FAST, "retries": 2})
    assert not rep.ok and rep.stored == 0
    assert {(f[0], f[1], f[3]) for f in rep.failures} == {(s, "r", 3) for s in sky["source_id"][:4]}
    rows = cat.sql("select filter, attempts, reason from fetch_failures").fetchall()
    assert len(rows) == 4 and all(r[0] == "r" and r[1] == 3 and "service error" in r[2] for r in rows)
    with HipsServer(sky) as srv:  # the service recovers: the same sources are fetched, failures cleared
        rep = fetch_stamps(cat, "PS1", filters=["g", "r"], server=srv.url, limit=4, **FAST)
    assert rep.ok and rep.stored == 4 and cat.table_count("fetch_failures") == 0
    cat.close()


def test_cli_exit_status_and_kill_resume(tmp_path, sky):
    """A fetch killed with SIGKILL mid-way, then run again: every stamp once, no dangling rows."""
    cat = _catalog(tmp_path, sky)
    cat.close()
    binarycat = [sys.executable, "-m", "binarycat"]
    env = {**os.environ, "CI": "1"}
    with HipsServer(sky, delay_s=0.05, fail_rate=0.1, fault_seed=5) as srv:
        args = binarycat + ["--catalog", str(tmp_path / "cat"), "fetch", "--survey", "PS1", "--filters", "g,r",
                            "--workers", "2", "--max-rps", "0", "--hips2fits-url", srv.url]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while len(srv.requests) < 20 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        first = len(srv.requests)
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "stored" in done.stdout
    with Catalog(tmp_path / "cat") as cat:
        assert cat.sql("select count(*), count(distinct source_id) from stamps").fetchone() == (len(sky), len(sky))
        for (shard,) in cat.sql("select distinct shard from stamps").fetchall():
            assert (cat.path / shard).is_file()
    assert first >= 20
    with HipsServer(sky, fail_hips=("CDS/P/2MASS/K",)) as srv:
        bad = subprocess.run(binarycat + ["--catalog", str(tmp_path / "cat"), "fetch", "--survey", "2MASS",
                                          "--filters", "J,Ks", "--limit", "2", "--retries", "1",
                                          "--hips2fits-url", srv.url], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("failed") == 2 and "Ks after 2 attempts" in bad.stderr


def test_cli_fetch_takes_numeric_id_ranges(tmp_path, sky):
    from typer.testing import CliRunner

    from binarycat.cli.app import app

    _catalog(tmp_path, sky).close()
    ids = sorted(sky["source_id"])
    wanted = {ids[1], ids[2], ids[7]}
    spec = f"{int(ids[1])}-{int(ids[2])},{int(ids[7])}"
    with HipsServer(sky) as srv:
        res = CliRunner().invoke(app, ["--catalog", str(tmp_path / "cat"), "fetch", "--survey", "PS1", "--filters",
                                       "g", "--ids", spec, "--max-rps", "0", "--hips2fits-url", srv.url],
                                 env={"CI": "1"})
    assert res.exit_code == 0, res.output
    with Catalog(tmp_path / "cat") as cat:
        assert {r[0] for r in cat.sql("select source_id from stamps").fetchall()} == wanted
