"""`Catalog.released`: another process can use the catalogue while a long run works in memory."""

import subprocess
import sys
import time

import pytest

from binarycat.catalog.sources import import_sources
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.ingest.labels import import_labels
from binarycat.ingest.simulate import simulate_sky
from binarycat.ingest.stamps import ingest_fits
from binarycat.model.evaluation import evaluate_model
from binarycat.model.train import TrainConfig, train_stamp_classifier
from binarycat.pipeline import init_catalog

_COUNT = "import sys; from binarycat.catalog.store import Catalog; " \
         "print(Catalog(sys.argv[1], read_only=True).sql('select count(*) from sources').fetchone()[0])"
_INSERT = "import sys; from binarycat.catalog.store import Catalog; c = Catalog(sys.argv[1]); " \
          "c.sql(\"insert into sources (source_id, ra, dec, healpix) values ('x1', 10.0, 20.0, 0)\"); c.close()"
_HOLD = "import sys, time; from binarycat.catalog.store import Catalog; c = Catalog(sys.argv[1]); " \
        "print('held', flush=True); time.sleep(float(sys.argv[2])); c.close()"


def _python(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120)


def _hold(path, seconds: float) -> subprocess.Popen:
    """Another process that opens the catalogue read-write and keeps it for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_an_open_catalogue_locks_out_other_processes_until_released(tmp_path):
    cat = Catalog(tmp_path / "c")
    assert _python(_COUNT, cat.path).returncode != 0  # the premise: DuckDB's one-writer lock
    with cat.released():
        assert "released" in repr(cat)
        assert _python(_INSERT, cat.path).returncode == 0
        assert _python(_COUNT, cat.path).stdout.strip() == "1"
    assert cat.sql("select source_id from sources").fetchall() == [("x1",)]
    assert _python(_COUNT, cat.path).returncode != 0
    cat.close()


def test_reopening_waits_for_another_process_to_let_go(tmp_path):
    cat = Catalog(tmp_path / "c")
    said = []
    with cat.released(on_wait=said.append):
        holder = _hold(cat.path, 3.0)
    holder.wait()
    assert len(said) == 1 and "Waiting for another process" in said[0]
    assert cat.table_count("sources") == 0
    cat.close()


def test_reopening_gives_up_after_its_wait(tmp_path):
    cat = Catalog(tmp_path / "c")
    holder = None
    with pytest.raises(BinarycatError, match="Cannot open .*lock"):
        with cat.released(wait_minutes=0.05):
            holder = _hold(cat.path, 30.0)
    holder.kill()
    holder.wait()


def test_an_error_inside_comes_out_at_once_and_the_catalogue_reopens(tmp_path):
    cat = Catalog(tmp_path / "c")
    with pytest.raises(ValueError, match="inside"):
        with cat.released(wait_minutes=5):
            raise ValueError("inside")
    assert cat.table_count("sources") == 0 and "released" not in repr(cat)
    start = time.monotonic()
    with pytest.raises(ValueError, match="inside"):
        with cat.released(wait_minutes=5):
            holder = _hold(cat.path, 30.0)
            raise ValueError("inside")
    assert time.monotonic() - start < 20  # not the five minutes a clean exit would wait
    holder.kill()
    holder.wait()


def _hst_catalogue(tmp_path) -> Catalog:
    """A real catalogue of 30 simulated, labelled HST sources."""
    sim = simulate_sky(tmp_path / "sim", n_sources=30, surveys=["HST"], seed=4)
    cat = init_catalog(tmp_path / "cat")
    import_sources(cat, sim.sources_csv)
    ingest_fits(cat, [tmp_path / "sim" / "HST"], "HST")
    import_labels(cat, sim.truth_csv, labeller="simulator")
    return cat


def test_training_leaves_the_catalogue_to_other_processes_while_it_trains(tmp_path):
    cat = _hst_catalogue(tmp_path)
    counts = []

    def after_epoch(epoch, total, info):
        counts.append(_python(_COUNT, cat.path).stdout.strip())

    result = train_stamp_classifier(cat, ["HST"], TrainConfig(epochs=2, batch_size=16, input_size=32, views=1),
                                    device="cpu", progress=after_epoch)
    assert counts == ["30", "30"]
    assert cat.sql("select count(*) from models where model_id = ?", [result.model_id]).fetchone()[0] == 1
    assert _python(_COUNT, cat.path).returncode != 0  # held again, by this process
    cat.close()


def test_evaluation_leaves_the_catalogue_to_other_processes_while_it_scores(tmp_path):
    cat = _hst_catalogue(tmp_path)
    result = train_stamp_classifier(cat, ["HST"], TrainConfig(epochs=1, batch_size=16, input_size=32, views=1),
                                    device="cpu")
    said, counts = [], []

    def progress(msg):
        said.append(msg)
        counts.append(_python(_COUNT, cat.path).stdout.strip())

    ev = evaluate_model(cat, result.model_id, on="test", device="cpu", progress=progress)
    assert [m.split()[0] for m in said] == ["Scoring", "Fitting", "Scoring"], said
    assert counts == ["30"] * 3  # another process read the catalogue at each step
    stored = cat.sql("select metrics from models where model_id = ?", [result.model_id]).fetchone()[0]
    assert "baseline" in stored and "evaluation" in stored and ev.n_stamps > 0
    assert _python(_COUNT, cat.path).returncode != 0  # held again, by this process
    cat.close()
