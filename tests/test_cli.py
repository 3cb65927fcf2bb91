"""The CLI verbs end to end on a temporary catalogue, through the installed console script."""

import json
import shutil
import subprocess
import sys

import pytest

BINARYCAT = shutil.which("binarycat") or f"{sys.executable} -m binarycat"


def run(*args, cwd=None, ok=True):
    cmd = BINARYCAT.split() + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**__import__("os").environ, "CI": "1", "COLUMNS": "200"})
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def invoke(*args):
    """The CLI in this process (typer's CliRunner), for commands whose subprocess would mostly import torch."""
    from typer.testing import CliRunner

    from binarycat.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"CI": "1", "COLUMNS": "200"})


def assert_one_sentence_error(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("Error:")
    for w in words:
        assert w in proc.stderr


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cat = root / "cat"
    run("simulate", root / "sim", "--sources", 40, "--surveys", "HST,PS1", "--seed", 5)
    run("--catalog", cat, "init")
    out = run("--catalog", cat, "sources", "import", root / "sim" / "sources.csv").stdout
    assert "40 sources added" in out
    out = run("--catalog", cat, "ingest", root / "sim" / "HST", "--survey", "hubble").stdout
    assert "stamps stored" in out
    run("--catalog", cat, "ingest", root / "sim" / "PanSTARRS", "--survey", "Pan-STARRS")
    run("--catalog", cat, "label", "import", root / "sim" / "truth.csv", "--labeller", "simulator")
    trained = run("--catalog", cat, "train", "--surveys", "HST,PS1", "--epochs", 1, "--input-size", 32,
                  "--format", "json")
    model_id = json.loads(trained.stdout)["model_id"]
    assert "epoch 1/1: loss" in trained.stderr and "validation macro-F1" in trained.stderr  # a log line per epoch
    predicted = invoke("--catalog", cat, "predict")  # in-process: the torch import is paid once per session
    assert predicted.exit_code == 0 and "stamps predicted" in predicted.output, predicted.output
    return root, cat, model_id


def test_reingest_adds_nothing(workflow):
    root, cat, _ = workflow
    out = run("--catalog", cat, "ingest", root / "sim" / "HST", "--survey", "HST").stdout
    assert "0 stamps stored" in out


def test_query_binary_flags_and_formats(workflow, tmp_path):
    _, cat, model_id = workflow
    out = run("--catalog", cat, "query", "select * from binary_flags limit 5", "--format", "json").stdout
    rows = json.loads(out)
    assert len(rows) == 5 and all(r["model_id"] == model_id for r in rows)
    run("--catalog", cat, "query", "candidates", "--format", "csv", "--output", tmp_path / "c.csv")
    header = (tmp_path / "c.csv").read_text().splitlines()[0]
    assert "p_HST" in header and "p_PanSTARRS" in header
    assert "candidates" in run("--catalog", cat, "query", "--list").stdout


def test_evaluate_prints_the_report(workflow):
    root, cat, model_id = workflow
    out = invoke("--catalog", cat, "evaluate").output
    assert model_id in out and "macro avg" in out and "HST" in out
    test_ids = json.loads(run("--catalog", cat, "query", "select source_id from splits where model_id = "
                              f"'{model_id}' and split = 'test' order by 1", "-f", "json").stdout)
    first = int(test_ids[0]["source_id"])
    one = json.loads(run("--catalog", cat, "evaluate", "--model", model_id, "--ids", first, "--no-baseline",
                         "--truth", root / "sim" / "truth.csv", "-f", "json").stdout)
    per_survey = one["per_survey"]
    assert sum(r["macro avg"]["support"] for r in per_survey.values()) <= 2  # one source: a stamp per survey
    assert sum(z["stamps"] for z in one["error_zones"]) == one["n_stamps"]
    assert {z["survey"] for z in one["error_zones"]} == set(per_survey)


def test_user_errors_are_one_sentence(workflow, tmp_path):
    root, cat, _ = workflow
    assert_one_sentence_error(run("--catalog", cat, "ingest", root / "sim" / "HST", "--survey", "Gaia", ok=False),
                              "Unknown survey", "PanSTARRS")
    assert_one_sentence_error(run("--catalog", cat, "query", "selec nothing", ok=False), "Query failed")
    assert_one_sentence_error(run("--catalog", cat, "query", "delete from sources", ok=False), "read-only")
    assert_one_sentence_error(run("--catalog", tmp_path / "none", "query", "select 1", ok=False), "No catalogue")
    assert_one_sentence_error(run("--catalog", cat, "sources", "import", tmp_path / "missing.csv", ok=False),
                              "does not exist")
    assert_one_sentence_error(run("simulate", tmp_path / "s", "--separation-range", "1.5,1", ok=False),
                              "separation_range")
    assert_one_sentence_error(run("simulate", tmp_path / "s", "--flux-ratio-range", "0.2,1.5", ok=False),
                              "flux_ratio_range")
    assert_one_sentence_error(run("simulate", tmp_path / "s", "--psf", "airy", ok=False),
                              "Unknown PSF profile", "moffat")
    assert_one_sentence_error(run("simulate", tmp_path / "s", "--psf", "moffat", "--moffat-beta", "0.5", ok=False),
                              "beta")
    assert_one_sentence_error(run("simulate", tmp_path / "s", "--psf", "moffat", "--moffat-beta", "4,x", ok=False),
                              "beta")
    assert_one_sentence_error(run("--catalog", cat, "evaluate", "--ids", "39-1", ok=False), "--ids", "39-1")
    assert_one_sentence_error(run("--catalog", cat, "evaluate", "--truth", root / "sim" / "sources.csv", ok=False),
                              "lacks the column", "companion_snr")
    assert not (tmp_path / "s" / "sources.csv").exists()
    n = json.loads(run("--catalog", cat, "query", "select count(*) as n from sources", "-f", "json").stdout)
    assert n == [{"n": 40}]


def test_bad_fits_reported_and_exit_status_says_so(workflow, tmp_path):
    root, cat, _ = workflow
    (tmp_path / "00001_HST_V.fits").write_bytes(b"SIMPLE  = garbage")
    proc = run("--catalog", cat, "ingest", tmp_path, "--survey", "HST", ok=False)
    assert proc.returncode == 2 and "00001_HST_V.fits" in proc.stderr and "Traceback" not in proc.stderr


def test_newer_catalogue_is_refused(tmp_path):
    import duckdb

    run("--catalog", tmp_path / "c", "init")
    con = duckdb.connect(str(tmp_path / "c" / "catalog.duckdb"))
    con.execute("update meta set value = '999' where key = 'schema_version'")
    con.close()
    assert_one_sentence_error(run("--catalog", tmp_path / "c", "init", ok=False), "newer")


def test_every_command_has_help_with_an_example():
    assert "Example" in run("train", "--help").stdout  # the console script itself; the rest in-process
    for cmd in (["init"], ["demo"], ["simulate"], ["ingest"], ["predict"], ["evaluate"], ["crossmatch"],
                ["fetch"], ["sources", "vizier"],
                ["query"], ["surveys"], ["sources", "import"], ["label", "import"],
                ["eb", "train"], ["eb", "predict"], ["eb", "evaluate"], ["lightcurves", "ingest"],
                ["lightcurves", "fetch"], ["models", "list"], ["models", "export"], ["models", "import"]):
        out = invoke(*cmd, "--help")
        assert out.exit_code == 0 and "Example" in out.output, cmd


def test_demo_runs_end_to_end_small(tmp_path):
    proc = run("--catalog", tmp_path / "cat", "demo", "--data-dir", tmp_path / "sim", "--sources", 30,
               "--epochs", 1, "--lightcurves", 60, "--eb-epochs", 1)
    assert "Test-split classification report" in proc.stdout
    assert "Eclipsing binaries: test-split report" in proc.stdout and "Candidate triples" in proc.stdout
    assert len(list((tmp_path / "sim" / "tess").glob("*-s_lc.fits"))) > 0
    out = run("--catalog", tmp_path / "cat", "query",
              "select count(*) as n from binary_flags where survey = 'TESS'", "-f", "json").stdout
    assert json.loads(out)[0]["n"] > 0
    assert "Binary candidates across surveys" in proc.stdout or "candidates" in proc.stdout
    out = run("--catalog", tmp_path / "cat", "query", "select count(*) as n from binary_flags", "-f", "json").stdout
    assert json.loads(out)[0]["n"] > 0
    # the CALNet model moves to another catalogue with its split of TIC ids
    models = json.loads(invoke("--catalog", tmp_path / "cat", "models", "list", "-f", "json").output)
    assert {m["kind"] for m in models} == {"stamp_classifier", "eb_calnet"}
    calnet = next(m["model_id"] for m in models if m["kind"] == "eb_calnet")
    assert invoke("--catalog", tmp_path / "cat", "models", "export", calnet, tmp_path / "eb.zip").exit_code == 0
    out = invoke("--catalog", tmp_path / "other", "models", "import", tmp_path / "eb.zip").output
    assert f"Imported {calnet}" in out and "TIC ids" in out
    split = "select tic_id, split from eb_splits order by tic_id"
    there = run("--catalog", tmp_path / "other", "query", split, "-f", "json").stdout
    assert json.loads(there) == json.loads(run("--catalog", tmp_path / "cat", "query", split, "-f", "json").stdout)


def test_init_removes_orphan_shards_only(workflow):
    _, cat, _ = workflow
    orphan = cat / "stamps" / "hpx5=00001" / "orphan.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"PAR1")
    before = json.loads(run("--catalog", cat, "query", "select count(*) as n from stamps", "-f", "json").stdout)
    out = run("--catalog", cat, "init").stdout
    assert "Removed 1 unreferenced shard" in out and not orphan.exists()
    out = run("--catalog", cat, "query", "select shard from stamps", "-f", "json").stdout
    assert all((cat / r["shard"]).is_file() for r in json.loads(out))
    assert json.loads(run("--catalog", cat, "query", "select count(*) as n from stamps", "-f", "json").stdout) == before


def test_crossmatch_command_stores_and_writes_pairs(workflow, tmp_path):
    root, cat, _ = workflow
    out = run("--catalog", cat, "crossmatch", root / "sim" / "sources.csv", "--radius", 0.5, "--name", "self",
              "--output", tmp_path / "pairs.fits", "--format", "fits").stdout
    assert "40 pairs" in out and "40 of 40 external rows" in out
    from astropy.table import Table

    pairs = Table.read(tmp_path / "pairs.fits")
    assert len(pairs) == 40 and (pairs["sep_arcsec"] < 1e-6).all() and str(pairs["ra"].unit) == "deg"
    out = run("--catalog", cat, "query", "select count(*) as n from crossmatches where name = 'self'", "-f", "json")
    assert json.loads(out.stdout) == [{"n": 40}]
    bad = run("--catalog", cat, "crossmatch", tmp_path / "none.csv", "--radius", 1, ok=False)
    assert_one_sentence_error(bad, "does not exist")
