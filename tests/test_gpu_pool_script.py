"""scripts/gpu-pool-run.sh: its training ids hold every pool sky and no fresh sky; it runs end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu-pool-run.sh"


def _skies(block: str) -> list[dict]:
    text = re.search(rf"^{block}=\(\n(.*?)^\)", SCRIPT.read_text(), re.S | re.M).group(1)
    skies = []
    for line in text.splitlines():
        words = line.strip().strip("\"").split()
        if not words:
            continue
        seed, first, n = (int(w) if w.isdigit() else None for w in words[1:4])
        skies.append({"name": words[0], "seed": seed, "first": first, "n": n})
    return skies


def _pool_ranges() -> list[tuple[int, int]]:
    ids = re.search(r"^POOL_IDS=(\S+)", SCRIPT.read_text(), re.M).group(1)
    return [tuple(int(v) for v in r.split("-")) for r in ids.split(",")]


def _covered(lo: int, hi: int, ranges) -> bool:
    return any(a <= lo and hi <= b for a, b in ranges)


def _touches(lo: int, hi: int, ranges) -> bool:
    return any(lo <= b and a <= hi for a, b in ranges)


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_training_ids_hold_every_pool_sky_and_no_fresh_sky():
    pool, ranges = _skies("POOL"), _pool_ranges()
    assert len(pool) == 10
    for sky in pool:
        assert _covered(sky["first"], sky["first"] + sky["n"] - 1, ranges), sky
    fresh = [(950000, 950999), (960000, 960999)]      # EVAL: first ids, 1000 sources each
    assert "950000 1000" in SCRIPT.read_text() and "960000 1000" in SCRIPT.read_text()
    for lo, hi in fresh:
        assert not _touches(lo, hi, ranges)
    seeds = [s["seed"] for s in pool]
    assert len(set(seeds)) == len(seeds) and not {33, 34} & set(seeds)


@pytest.mark.slow
def test_a_smoke_run_trains_and_scores_on_both_fresh_skies(tmp_path):
    env = dict(os.environ, WORK=str(tmp_path), SCALE="0.004", INPUT_SIZE="64", PYTHON=sys.executable,
               TRAIN_ARGS="--epochs 1 --batch-size 16", OMP_NUM_THREADS="1",
               BENCH_ARGS="--n-sources 4 --repeats 1 --io-repeats 1")
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, capture_output=True, timeout=1200)
    reports = tmp_path / "reports"
    model = json.loads((reports / "train.json").read_text())["model_id"]
    assert model.startswith("resnet34-stem-")
    for sky in ("sim33", "sim34"):
        text = (reports / f"eval-{sky}.txt").read_text()
        assert "psf-pair-fit-moffat-v1" in text and "PanSTARRS" in text and "HST" in text
        assert (reports / f"eval-{sky}.parquet").stat().st_size > 0
    assert "Parquet" in (reports / "bench_stamp_io.txt").read_text()
    # a second run stores nothing again and trains nothing again
    before = _counts(tmp_path / "catalog")
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, capture_output=True, timeout=600)
    assert json.loads((reports / "train.json").read_text())["model_id"] == model
    assert _counts(tmp_path / "catalog") == before


def _counts(catalog: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "binarycat", "--catalog", str(catalog), "query",
                          "select (select count(*) from stamps) as stamps, (select count(*) from labels) "
                          "as labels, (select count(*) from models) as models", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]
