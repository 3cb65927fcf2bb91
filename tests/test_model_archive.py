"""Moving a trained model between catalogues: `binarycat.model.archive` on a real tiny model."""

import hashlib
import io
import json
import zipfile

import pytest
import torch

from binarycat.catalog.sources import import_sources
from binarycat.errors import BinarycatError
from binarycat.ingest.labels import import_labels
from binarycat.ingest.simulate import simulate_sky
from binarycat.ingest.stamps import ingest_fits
from binarycat.model.archive import export_model, import_model, read_manifest
from binarycat.model.checkpoints import load_catalog_checkpoint
from binarycat.model.predict import predict_stamps
from binarycat.model.train import TrainConfig, train_stamp_classifier
from binarycat.pipeline import init_catalog


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    sim = simulate_sky(root / "sim", n_sources=30, surveys=["HST"], seed=4)
    cat = init_catalog(root / "cat")
    import_sources(cat, sim.sources_csv)
    ingest_fits(cat, [root / "sim" / "HST"], "HST")
    import_labels(cat, sim.truth_csv, labeller="simulator")
    result = train_stamp_classifier(cat, ["HST"], TrainConfig(epochs=1, batch_size=16, input_size=32, views=1))
    yield root, sim, cat, result.model_id
    cat.close()


def _rewrite(src, dst, **members):
    """Copy archive ``src`` to ``dst`` with some members' bytes replaced (``model_json`` for model.json)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = members.get(name.replace(".", "_"), zin.read(name))
            zout.writestr(name, data)
    return dst


def _state(cat):
    return (cat.sql("select count(*) from models").fetchone()[0], cat.sql("select count(*) from splits").fetchone()[0],
            sorted(p.name for p in (cat.path / "models").glob("*")))


def test_export_then_import_gives_the_same_model_split_and_predictions(trained, tmp_path):
    root, sim, cat, model_id = trained
    archive = tmp_path / "m.zip"
    res = export_model(cat, model_id, archive)
    n_split = cat.sql("select count(*) from splits where model_id = ?", [model_id]).fetchone()[0]
    assert res.status == "exported" and res.n_split == n_split > 0
    assert sorted(zipfile.ZipFile(archive).namelist()) == ["checkpoint.pt", "model.json", "splits.parquet"]
    assert read_manifest(archive)["schema_version"] == cat.schema_version

    other = init_catalog(tmp_path / "other")
    assert import_model(other, archive).status == "imported"
    row = "select kind, surveys, params, split_seed, metrics, checkpoint, created_at from models where model_id = ?"
    assert other.sql(row, [model_id]).fetchone() == cat.sql(row, [model_id]).fetchone()
    split = "select source_id, split from splits where model_id = ? order by source_id"
    assert other.sql(split, [model_id]).fetchall() == cat.sql(split, [model_id]).fetchall()

    before = _state(other)
    assert import_model(other, archive).status == "unchanged"
    assert _state(other) == before

    # the imported model predicts the same stamps exactly as the original does
    import_sources(other, sim.sources_csv)
    ingest_fits(other, [root / "sim" / "HST"], "HST")
    predict_stamps(cat, model_id=model_id, surveys=["HST"])
    predict_stamps(other, model_id=model_id, surveys=["HST"])
    p = "select source_id, p_binary, flag from predictions where model_id = ? order by source_id"
    assert other.sql(p, [model_id]).fetchall() == cat.sql(p, [model_id]).fetchall()
    other.close()


def test_import_refuses_bad_archives_and_writes_nothing(trained, tmp_path):
    _, _, cat, model_id = trained
    archive = export_model(cat, model_id, tmp_path / "m.zip").path
    with pytest.raises(BinarycatError, match="already exists"):
        export_model(cat, model_id, archive)
    assert export_model(cat, model_id, archive, overwrite=True).status == "exported"
    with pytest.raises(BinarycatError, match="No model 'nope'"):
        export_model(cat, "nope", tmp_path / "n.zip")
    assert not (tmp_path / "n.zip").exists()

    manifest = json.loads(zipfile.ZipFile(archive).read("model.json"))
    weights = zipfile.ZipFile(archive).read("checkpoint.pt")
    (tmp_path / "junk.zip").write_bytes(b"PK not really a zip")
    damaged = _rewrite(archive, tmp_path / "damaged.zip", checkpoint_pt=weights[:-10] + b"0123456789")
    newer = _rewrite(archive, tmp_path / "newer.zip",
                     model_json=json.dumps({**manifest, "schema_version": manifest["schema_version"] + 1}))
    no_split = tmp_path / "no_split.zip"
    with zipfile.ZipFile(no_split, "w") as z:
        z.writestr("model.json", json.dumps(manifest))
        z.writestr("checkpoint.pt", weights)

    other = init_catalog(tmp_path / "other")
    before = _state(other)
    for path, words in [(tmp_path / "missing.zip", "is missing"), (tmp_path / "junk.zip", "not a readable zip"),
                        (damaged, "SHA-256"), (newer, "schema version"), (no_split, "splits.parquet")]:
        with pytest.raises(BinarycatError, match=words):
            import_model(other, path)
        assert _state(other) == before

    # another model under an id the catalogue holds: weights that load, with a matching checksum
    blob = torch.load(io.BytesIO(weights), weights_only=True)
    first = next(k for k, v in blob["state_dict"].items() if v.is_floating_point())
    blob["state_dict"][first] = blob["state_dict"][first] + 1.0
    buf = io.BytesIO()
    torch.save(blob, buf)
    changed = _rewrite(archive, tmp_path / "changed.zip", checkpoint_pt=buf.getvalue(), model_json=json.dumps(
        {**manifest, "checkpoint_sha256": hashlib.sha256(buf.getvalue()).hexdigest()}))
    assert import_model(other, archive).status == "imported"
    stored = (other.path / "models" / f"{model_id}.pt").read_bytes()
    with pytest.raises(BinarycatError, match="different model"):
        import_model(other, changed)
    assert (other.path / "models" / f"{model_id}.pt").read_bytes() == stored
    model, _ = load_catalog_checkpoint(other, f"models/{model_id}.pt")
    assert model is not None
    other.close()


def test_models_cli_lists_exports_and_imports(trained, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from binarycat.cli.app import app

    _, _, cat, model_id = trained
    n_split = cat.sql("select count(*) from splits where model_id = ?", [model_id]).fetchone()[0]
    first = export_model(cat, model_id, tmp_path / "first.zip").path  # `cat` is held open read-write here

    def cli(*args):
        return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})

    a, b = tmp_path / "a", tmp_path / "b"
    out = cli("--catalog", a, "models", "import", first)
    assert out.exit_code == 0 and f"Imported {model_id}" in out.output, out.output
    listed = json.loads(cli("--catalog", a, "models", "list", "--format", "json").output)
    assert [m["model_id"] for m in listed] == [model_id]
    assert listed[0]["kind"] == "stamp_classifier" and listed[0]["surveys"] == "HST"
    assert listed[0]["n_train"] + listed[0]["n_validation"] + listed[0]["n_test"] == n_split
    assert listed[0]["n_train"] > 0 and listed[0]["test_macro_f1"] is not None

    archive = tmp_path / "m.zip"
    out = cli("--catalog", a, "models", "export", model_id, archive, "--format", "json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"model_id": model_id, "kind": "stamp_classifier", "path": str(archive),
                                      "n_split": n_split, "status": "exported"}
    assert cli("--catalog", b, "models", "import", archive).exit_code == 0
    out = cli("--catalog", b, "models", "import", archive)
    assert out.exit_code == 0 and "unchanged" in out.output, out.output
    assert json.loads(cli("--catalog", b, "models", "list", "-f", "json").output) == listed

    (tmp_path / "junk.zip").write_text("not a zip")
    bad = cli("--catalog", b, "models", "import", tmp_path / "junk.zip")
    assert bad.exit_code != 0 and "not a binarycat model archive" in str(bad.exception)
    bad = cli("--catalog", a, "models", "export", model_id, archive)
    assert bad.exit_code != 0 and "--force" in str(bad.exception)
    monkeypatch.chdir(tmp_path)
    assert cli("--catalog", a, "models", "export", model_id).exit_code == 0  # default name: MODEL_ID.zip
    assert read_manifest(tmp_path / f"{model_id}.zip")["model_id"] == model_id


def test_import_refuses_a_split_whose_ids_name_other_stars_here(trained, tmp_path):
    _, sim, cat, model_id = trained
    archive = export_model(cat, model_id, tmp_path / "m.zip").path
    other = init_catalog(tmp_path / "other")
    import_sources(other, sim.sources_csv)
    seen = cat.sql("select min(source_id) from splits where model_id = ?", [model_id]).fetchone()[0]
    other.sql("update sources set dec = dec + 0.01 where source_id = ?", [seen])  # 36" away: another star
    before = _state(other)
    with pytest.raises(BinarycatError, match=rf"1 of the \d+ sources .*\(e\.g\. {seen} lies 36\.0\""):
        import_model(other, archive)
    assert _state(other) == before
    other.sql("update sources set dec = dec - 0.01 + 0.1 / 3600 where source_id = ?", [seen])  # 0.1": the same star
    assert import_model(other, archive).status == "imported"
    other.close()
