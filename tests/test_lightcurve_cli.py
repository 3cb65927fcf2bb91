"""``binarycat lightcurves ingest | fetch`` end to end, through the command line (fetch against the
loopback MAST stand-in)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from binarycat.catalog.store import Catalog
from binarycat.ingest.tess_fits import spoc_filename, write_spoc_lightcurve
from conftest import add_sources
from mast_server import MastServer, MastTarget, synthetic_lightcurve

BINARYCAT = [sys.executable, "-m", "binarycat"]
ENV = {**os.environ, "CI": "1", "COLUMNS": "200"}


def run(*args, **kw):
    return subprocess.run(BINARYCAT + [str(a) for a in args], capture_output=True, text=True, env=ENV,
                          timeout=300, **kw)


def assert_one_sentence_error(proc, *words):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Error:" in proc.stderr
    for w in words:
        assert w in proc.stderr


@pytest.fixture
def cat_dir(tmp_path):
    with Catalog(tmp_path / "cat") as cat:
        add_sources(cat, [("S1", 83.80, -5.40), ("S2", 83.90, -5.30)])
    return tmp_path / "cat"


def _write(folder, target):
    return write_spoc_lightcurve(folder / spoc_filename(target.tic_id, target.sector), synthetic_lightcurve(target))


def test_ingest_good_corrupt_and_short_files(tmp_path, cat_dir):
    folder = tmp_path / "lc"
    _write(folder, MastTarget(1001, 4, 83.80, -5.40))
    good = _write(folder, MastTarget(1002, 6, 83.90, -5.30))
    _write(folder, MastTarget(1004, 7, 84.10, -5.10, n_points=1500))  # too few good cadences
    (folder / "garbage_lc.fits").write_bytes(b"this is not a FITS file\n" * 200)
    data = good.read_bytes()
    (folder / "truncated_lc.fits").write_bytes(data[: len(data) // 2])

    proc = run("--catalog", cat_dir, "lightcurves", "ingest", folder)
    assert proc.returncode == 2, proc.stderr
    assert "2 light curves stored, 0 already present, 3 bad files (5 files read)." in proc.stdout
    assert proc.stderr.count("bad file") == 3 and "Traceback" not in proc.stderr
    assert "good cadences" in proc.stderr and "truncated" in proc.stderr and "not a FITS file" in proc.stderr
    with Catalog(cat_dir) as cat:
        assert cat.sql("select tic_id, source_id from lightcurves order by tic_id").fetchall() == [
            (1001, "S1"), (1002, "S2")]

    again = run("--catalog", cat_dir, "lightcurves", "ingest", folder, "--match-radius", "5")
    assert again.returncode == 2 and "0 light curves stored, 2 already present" in again.stdout

    only_bad = run("--catalog", cat_dir, "lightcurves", "ingest", folder / "garbage_lc.fits",
                   folder / "truncated_lc.fits")
    assert_one_sentence_error(only_bad, "None of the 2 file(s) is a usable TESS light curve")
    missing = run("--catalog", cat_dir, "lightcurves", "ingest", tmp_path / "nowhere.fits")
    assert_one_sentence_error(missing, "no such file")
    with Catalog(cat_dir) as cat:
        assert cat.table_count("lightcurves") == 2


TARGETS = [MastTarget(1001, 4, 83.80, -5.40), MastTarget(1001, 5, 83.80, -5.40),
           MastTarget(1002, 6, 83.90, -5.30), MastTarget(1003, 4, 84.00, -5.20)]


def test_fetch_through_the_cli(cat_dir):
    with MastServer(TARGETS, fail_first=1) as srv:
        proc = run("--catalog", cat_dir, "lightcurves", "fetch", "--mast-url", srv.url, "--tic", "1001",
                   "--tic", "1002,2000", "--backoff", "0.01")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "fetch TESS light curves" in proc.stdout
        again = run("--catalog", cat_dir, "lightcurves", "fetch", "--mast-url", srv.url, "--tic", "1001,1002,2000")
        assert again.returncode == 0 and "3 target(s) skipped" in again.stdout
        bad_sql = run("--catalog", cat_dir, "lightcurves", "fetch", "--mast-url", srv.url, "--where", "s.nope > 1")
        assert_one_sentence_error(bad_sql, "--where is not a valid condition on sources")
        bad_tic = run("--catalog", cat_dir, "lightcurves", "fetch", "--mast-url", srv.url, "--tic", "12x")
        assert_one_sentence_error(bad_tic, "'12x' is not a TIC id")
    with Catalog(cat_dir) as cat:
        assert cat.sql("select lightcurve_id, source_id from lightcurves order by 1").fetchall() == [
            ("TIC1001-s0004", "S1"), ("TIC1001-s0005", "S1"), ("TIC1002-s0006", "S2")]
        assert cat.sql("select source_id, covered from coverage order by 1").fetchall() == [
            ("TIC 1001", True), ("TIC 1002", True), ("TIC 2000", False)]

    with MastServer(TARGETS, fail_tics=[1003]) as srv:
        failed = run("--catalog", cat_dir, "lightcurves", "fetch", "--mast-url", srv.url, "--tic", "1003",
                     "--retries", "1", "--backoff", "0.01")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "failed TIC 1003: search failed after 2 attempts: MAST answered HTTP 500" in " ".join(failed.stderr.split())


def test_fetch_killed_midway_resumes(cat_dir):
    targets = [MastTarget(3000 + i, 4 + i % 3, 83.0 + 0.01 * i, -5.0) for i in range(8)]
    tics = ",".join(str(t.tic_id) for t in targets)
    args = ["--catalog", cat_dir, "lightcurves", "fetch", "--tic", tics]
    with MastServer(targets, delay_s=0.05) as srv:
        proc = subprocess.Popen(BINARYCAT + [str(a) for a in args + ["--mast-url", srv.url]], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while srv.counts()["download"] < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        first = srv.counts()["download"]
        done = run(*args, "--mast-url", srv.url)
        assert done.returncode == 0, done.stdout + done.stderr
        total = srv.counts()["download"]
    assert 3 <= first < len(targets)
    assert total <= len(targets) + 1  # at most the file in flight is downloaded twice
    with Catalog(cat_dir) as cat:
        assert cat.sql("select count(*), count(distinct lightcurve_id) from lightcurves").fetchone() == (8, 8)
        for (shard,) in cat.sql("select distinct shard from lightcurves").fetchall():
            assert (cat.path / shard).is_file()
    assert not list((cat_dir / "downloads").rglob("*.part"))
