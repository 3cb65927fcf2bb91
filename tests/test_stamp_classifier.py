"""The stamp classifier end to end on an easy set: training beats chance, evaluation, calibration,
reproducibility and checkpoints of another schema version."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from binarycat.catalog.sources import import_sources
from binarycat.cli.app import app
from binarycat.errors import BinarycatError
from binarycat.ingest.labels import import_labels
from binarycat.ingest.stamps import ingest_fits
from binarycat.model.calibration import expected_calibration_error, fit_temperature, probabilities
from binarycat.model.checkpoints import load_catalog_checkpoint, save_checkpoint
from binarycat.model.evaluation import evaluate_model
from binarycat.model.networks import build
from binarycat.model.predict import model_row, predict_stamps
from binarycat.model.train import TrainConfig, train_stamp_classifier
from binarycat.pipeline import init_catalog

from conftest import write_stamp

SCALE, FWHM = 0.25, 1.0
# Tests of training mechanics (time budget, averaging, threshold modes) train on these 40 sources
# of the 100 in ``easy``, with one view, to keep the suite quick.
FEW = "s.source_id < '00040'"


def _easy_sky(root, first: int, n: int, seed: int):
    """Pan-STARRS-like stamps: singles and clearly resolved pairs (2" apart), half each."""
    rng = np.random.default_rng(seed)
    sources, labels = [], []
    for i in range(first, first + n):
        sid = f"{i:05d}"
        ra, dec = 83.0 + 0.01 * i, -5.0
        binary = i % 2 == 0
        offsets = [(0.0, 0.0, 3000.0)]
        if binary:
            pa = rng.uniform(0, 2 * np.pi)
            offsets.append((2.0 * np.cos(pa), 2.0 * np.sin(pa), 3000.0 * rng.uniform(0.5, 1.0)))
        write_stamp(root / f"{sid}_PanSTARRS_r.fits", ra, dec, scale=SCALE, n=40, fwhm=FWHM, offsets=offsets,
                    seed=i, header={"SRCID": sid})
        sources.append((sid, ra, dec))
        labels.append((sid, "PanSTARRS", int(binary)))
    with open(root / "sources.csv", "w", newline="") as f:
        csv.writer(f).writerows([("source_id", "ra", "dec"), *sources])
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("source_id", "survey", "label"), *labels])


def _add_sky(cat, root, first, n, seed):
    _easy_sky(root, first, n, seed)
    import_sources(cat, root / "sources.csv")
    ingest_fits(cat, [root], "PanSTARRS")
    import_labels(cat, root / "labels.csv", labeller="truth")


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    root = tmp_path_factory.mktemp("easy")
    cat = init_catalog(root / "cat")
    _add_sky(cat, root / "train", 0, 100, seed=1)
    config = TrainConfig(epochs=6, batch_size=16, input_size=32, patience=6, learning_rate=1e-3)
    result = train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu")
    yield cat, result, root
    cat.close()


def test_moffat_baseline_is_stored_beside_the_gaussian_one(easy):
    cat, result, root = easy
    gauss = evaluate_model(cat, result.model_id, on="test", device="cpu")
    moffat = evaluate_model(cat, result.model_id, on="test", device="cpu", baseline_psf="moffat")
    assert (gauss.baseline_name, moffat.baseline_name) == ("psf-pair-fit-v1", "psf-pair-fit-moffat-v1")
    assert moffat.on == "test [moffat]" and moffat.report == gauss.report
    assert moffat.baseline["macro avg"]["support"] == gauss.baseline["macro avg"]["support"] == gauss.n_stamps
    stored = model_row(cat, result.model_id)["metrics"]
    assert stored["baseline"]["name"] == "psf-pair-fit-v1"
    assert stored["baseline-moffat"]["name"] == "psf-pair-fit-moffat-v1"
    assert set(stored["evaluation"]) >= {"test", "test [moffat]"}
    assert stored["evaluation"]["test [moffat]"]["baseline"] == moffat.baseline
    with pytest.raises(BinarycatError, match="lorentz"):
        evaluate_model(cat, result.model_id, on="test", device="cpu", baseline_psf="lorentz")


def test_tiny_training_beats_chance_on_stamps_it_never_saw(easy):
    cat, result, root = easy
    _add_sky(cat, root / "new", 1000, 40, seed=2)
    ev = evaluate_model(cat, result.model_id, on="unseen", device="cpu", baseline=False)
    assert ev.n_stamps == 40
    assert ev.report["macro avg"]["f1"] > 0.75, ev.report


def test_evaluation_report_structure_figure_and_stored_row(easy):
    cat, result, root = easy
    ev = evaluate_model(cat, result.model_id, on="test", device="cpu")
    assert ev.n_stamps == result.n_test
    for rep in (ev.report, ev.per_survey["PanSTARRS"], ev.baseline, ev.baseline_per_survey["PanSTARRS"]):
        assert set(rep) >= {"not binary", "binary", "accuracy", "macro avg", "weighted avg", "confusion_matrix"}
        assert set(rep["binary"]) == {"precision", "recall", "f1", "support"}
        assert sum(map(sum, rep["confusion_matrix"])) == ev.n_stamps
    assert ev.report["macro avg"]["support"] == ev.n_stamps
    assert set(ev.calibration) == {"temperature", "ece_before", "ece_after"}
    assert set(ev.comparison) == {"all", "PanSTARRS"}
    for name, rep, base in (("all", ev.report, ev.baseline),
                            ("PanSTARRS", ev.per_survey["PanSTARRS"], ev.baseline_per_survey["PanSTARRS"])):
        c = ev.comparison[name]
        assert c["difference"] == pytest.approx(rep["macro avg"]["f1"] - base["macro avg"]["f1"])
        assert c["low"] <= c["difference"] <= c["high"]
        stamps = ev.per_stamp.to_pydict() if name == "all" else None
        if stamps is not None:
            cnn_right = np.equal(stamps["predicted"], stamps["label"])
            base_right = np.equal(stamps["baseline_predicted"], stamps["label"])
            assert c["cnn_only"] == int(np.sum(cnn_right & ~base_right))
            assert c["baseline_only"] == int(np.sum(base_right & ~cnn_right))
        assert 0.0 < c["mcnemar_p"] <= 1.0
    with Image.open(ev.figure) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]
    stored = model_row(cat, result.model_id)["metrics"]
    assert stored["evaluation"]["test"]["report"] == ev.report
    assert "per_stamp" not in stored["evaluation"]["test"]
    assert set(stored["baseline"]["thresholds"]) == {"PanSTARRS"}

    t = ev.per_stamp.to_pydict()
    assert ev.per_stamp.num_rows == ev.n_stamps and set(t["survey"]) == {"PanSTARRS"}
    assert len(set(t["stamp_id"])) == ev.n_stamps
    assert set(t["threshold"]) == {ev.thresholds["PanSTARRS"]}
    assert t["predicted"] == [int(p >= c) for p, c in zip(t["p_binary"], t["threshold"])]
    for who, rep in (("predicted", ev.report), ("baseline_predicted", ev.baseline)):
        cm = np.zeros((2, 2), int)
        for y, yhat in zip(t["label"], t[who]):
            cm[y, yhat] += 1
        assert cm.tolist() == rep["confusion_matrix"], who
    assert sum(t["correct"]) == round(ev.report["accuracy"] * ev.n_stamps)


def test_evaluate_cli_prints_table_2_the_baseline_and_writes_the_scored_stamps(easy, tmp_path):
    from astropy.table import Table

    cat, result, root = easy
    scored = tmp_path / "scored.fits"
    out = CliRunner().invoke(app, ["--catalog", str(root / "cat"), "evaluate", "--model", result.model_id,
                                   "--figure", str(tmp_path / "cm.png"), "--stamps", str(scored)])
    assert out.exit_code == 0, out.output
    for text in ("precision", "macro avg", "weighted avg", "PanSTARRS", "baseline", "calibration error",
                 "95% interval", "McNemar", "fitted on validation", "Per-stamp table"):
        assert text in out.output
    assert (tmp_path / "cm.png").exists()

    t = Table.read(scored)
    stored = model_row(cat, result.model_id)["metrics"]["evaluation"]
    assert len(t) == stored["test"]["n_stamps"] == result.n_test
    assert {"source_id", "survey", "label", "p_binary", "threshold", "predicted", "correct",
            "baseline_score", "baseline_predicted"} <= set(t.colnames)
    assert int(np.sum(t["correct"])) == round(stored["test"]["report"]["accuracy"] * len(t))

    bad = CliRunner().invoke(app, ["--catalog", str(root / "cat"), "evaluate", "--on", "nonsense"])
    assert bad.exit_code != 0 and "Unknown evaluation set" in str(bad.exception or bad.output)
    bad = CliRunner().invoke(app, ["--catalog", str(root / "cat"), "evaluate", "--model", result.model_id,
                                   "--stamps", str(tmp_path / "scored.txt")])
    assert bad.exit_code != 0 and "Cannot tell the format" in str(bad.exception or bad.output)
    assert not (tmp_path / "scored.txt").exists()
    assert model_row(cat, result.model_id)["metrics"]["evaluation"] == stored


def test_thresholds_fitted_at_training_are_refitted_the_same_for_an_older_model(easy):
    """Training fits each survey's threshold on validation; evaluate fits the same ones for a
    model stored without them, and reports the CNN at them and at the fixed 0.5."""
    cat, result, _ = easy
    row = model_row(cat, result.model_id)
    trained = row["metrics"]["thresholds"]
    assert set(trained["per_survey"]) == {"PanSTARRS"} and trained["validation"]["PanSTARRS"]["n"] == result.n_validation
    assert result.thresholds == trained["per_survey"]
    metrics = {k: v for k, v in row["metrics"].items() if k != "thresholds"}
    cat.sql("update models set metrics = ? where model_id = ?", [json.dumps(metrics), result.model_id])
    ev = evaluate_model(cat, result.model_id, on="test", device="cpu", baseline=False)
    refitted = model_row(cat, result.model_id)["metrics"]["thresholds"]
    assert refitted["per_survey"]["PanSTARRS"] == pytest.approx(trained["per_survey"]["PanSTARRS"], abs=1e-6)
    assert ev.thresholds == refitted["per_survey"] and ev.threshold == 0.5
    assert ev.report == metrics["test"] and ev.report_fixed == metrics["test_fixed_threshold"]
    assert ev.per_survey_fixed["PanSTARRS"] == metrics["test_per_survey_fixed_threshold"]["PanSTARRS"]

    fixed = train_stamp_classifier(cat, ["PanSTARRS"], TrainConfig(epochs=1, batch_size=16, input_size=32,
                                                                   thresholds="fixed", views=1),
                                   device="cpu", where=FEW)
    assert model_row(cat, fixed.model_id)["metrics"]["thresholds"] is None and fixed.thresholds == {}
    ev = evaluate_model(cat, fixed.model_id, on="test", device="cpu", baseline=False)
    assert ev.thresholds == {} and ev.report == ev.report_fixed
    with pytest.raises(BinarycatError, match="thresholds must be one of validation, fixed"):
        train_stamp_classifier(cat, ["PanSTARRS"], TrainConfig(epochs=1, thresholds="best"), device="cpu")


def test_temperature_scaling_lowers_the_calibration_error_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    overconfident = np.stack([np.zeros(4000), 4.0 * true_logit], axis=1)  # logits 4x too large
    before = expected_calibration_error(probabilities(overconfident), y)
    t = fit_temperature(overconfident, y)
    after = expected_calibration_error(probabilities(overconfident, t), y)
    assert t == pytest.approx(4.0, rel=0.15)
    assert after < before / 3 and after < 0.03
    # scaling never changes which class wins
    assert np.array_equal(probabilities(overconfident) >= 0.5, probabilities(overconfident, t) >= 0.5)


def test_calibration_is_fitted_at_training_and_stored(easy):
    cat, result, _ = easy
    cal = result.calibration
    assert cal["temperature"] > 0
    assert cal["ece_validation_after"] <= cal["ece_validation_before"] + 1e-9
    _, config = load_catalog_checkpoint(cat, model_row(cat, result.model_id)["checkpoint"])
    assert config["temperature"] == cal["temperature"]


def test_a_time_budget_stops_training_after_the_epoch_that_spends_it(easy):
    cat, result, _ = easy
    assert model_row(cat, result.model_id)["metrics"]["stopped"] == "epochs"
    config = TrainConfig(epochs=6, batch_size=16, input_size=32, learning_rate=1e-3, max_minutes=0, views=1)
    short = train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu", where=FEW)
    metrics = model_row(cat, short.model_id)["metrics"]
    assert len(short.history) == 1 and metrics["stopped"] == "max_minutes" and metrics["best_epoch"] == 1


def test_same_model_and_stamp_give_the_same_probability_twice_on_cpu(easy):
    cat, result, _ = easy
    rows = []
    for _ in range(2):
        predict_stamps(cat, result.model_id, device="cpu")
        rows.append(cat.sql("select stamp_id, p_binary from predictions where model_id = ? order by stamp_id",
                            [result.model_id]).fetchall())
    assert rows[0] == rows[1] and len(rows[0]) > 0
    a = evaluate_model(cat, result.model_id, on="test", device="cpu", baseline=False)
    b = evaluate_model(cat, result.model_id, on="test", device="cpu", baseline=False)
    assert a.report == b.report and a.calibration == b.calibration


def test_a_checkpoint_from_another_schema_version_fails_clearly(easy, tmp_path):
    cat, result, _ = easy
    row = model_row(cat, result.model_id)
    model, config = load_catalog_checkpoint(cat, row["checkpoint"])
    assert config["schema_version"] == cat.schema_version
    save_checkpoint(cat.resolve("models/old.pt"), model, {**config, "schema_version": cat.schema_version - 1})
    with pytest.raises(BinarycatError, match=rf"schema version {cat.schema_version - 1}.*retrain"):
        load_catalog_checkpoint(cat, "models/old.pt")
    cat.sql("insert into models (model_id, kind, surveys, params, split_seed, metrics, checkpoint) "
            "select 'old-model', kind, surveys, params, split_seed, metrics, 'models/old.pt' from models "
            "where model_id = ?", [result.model_id])
    try:
        with pytest.raises(BinarycatError, match="schema version"):
            predict_stamps(cat, "old-model", device="cpu")
        with pytest.raises(BinarycatError, match="schema version"):
            evaluate_model(cat, "old-model", device="cpu")
    finally:
        cat.sql("delete from models where model_id = 'old-model'")


def test_checkpoint_of_the_wrong_shape_is_one_sentence(easy):
    cat, result, _ = easy
    _, config = load_catalog_checkpoint(cat, model_row(cat, result.model_id)["checkpoint"])
    save_checkpoint(cat.resolve("models/wrong.pt"), build("resnet34"), config)  # stem weights missing
    with pytest.raises(BinarycatError, match="do not fit"):
        load_catalog_checkpoint(cat, "models/wrong.pt")


def test_custom_stem_keeps_the_body_input_small_and_returns_logits():
    for size, halvings in ((64, 2), (128, 3), (224, 4)):
        model = build("resnet34-stem", input_size=size).eval()
        strided = [m for m in model.conv1.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
        assert len(strided) == halvings
        assert isinstance(model.maxpool, torch.nn.Identity)
        with torch.inference_mode():
            body_in = model.conv1(torch.zeros(2, 1, size, size))
            assert body_in.shape[-1] <= 16 and body_in.shape[1] == 64
            assert model(torch.randn(2, 1, size, size)).shape == (2, 2)


def test_fine_tuning_starts_from_a_model_and_keeps_its_splits(easy, tmp_path):
    cat, result, root = easy
    _add_sky(cat, tmp_path / "more", 3000, 20, seed=4)
    frozen = TrainConfig(epochs=1, batch_size=16, input_size=32, learning_rate=0.0, init_from=result.model_id)
    tuned = train_stamp_classifier(cat, ["PanSTARRS"], frozen, device="cpu")
    assert tuned.model_id != result.model_id
    old_splits = dict(cat.sql("select source_id, split from splits where model_id = ?", [result.model_id]).fetchall())
    new_splits = dict(cat.sql("select source_id, split from splits where model_id = ?", [tuned.model_id]).fetchall())
    assert {s: new_splits[s] for s in old_splits} == old_splits
    added = {s: v for s, v in new_splits.items() if s >= "03000"}
    assert len(added) == 20 and set(added.values()) == {"train", "validation", "test"}
    # with a learning rate of 0 the fine-tuned weights are the starting ones (BatchNorm statistics aside)
    before, _ = load_catalog_checkpoint(cat, model_row(cat, result.model_id)["checkpoint"])
    after, config = load_catalog_checkpoint(cat, model_row(cat, tuned.model_id)["checkpoint"])
    weights = [n for n, _ in before.named_parameters()]
    assert all(torch.equal(dict(before.named_parameters())[n], dict(after.named_parameters())[n]) for n in weights)
    assert config["init_from"] == result.model_id and config["views"] == 8
    wrong = TrainConfig(epochs=1, input_size=48, init_from=result.model_id)
    with pytest.raises(BinarycatError, match="input_size 32 \\(not 48\\).*--input-size"):
        train_stamp_classifier(cat, ["PanSTARRS"], wrong, device="cpu")
    with pytest.raises(BinarycatError, match="No stamp classifier 'nope'"):
        train_stamp_classifier(cat, ["PanSTARRS"], TrainConfig(epochs=1, input_size=32, init_from="nope"), device="cpu")


def test_fine_tuning_may_change_the_normalisation_and_the_model_keeps_it(easy):
    cat, result, _ = easy
    config = TrainConfig(epochs=1, batch_size=16, input_size=32, learning_rate=0.0, views=1,
                         init_from=result.model_id, normalisation="asinh-noise-v1")
    tuned = train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu")
    _, stored = load_catalog_checkpoint(cat, model_row(cat, tuned.model_id)["checkpoint"])
    assert stored["normalisation"] == "asinh-noise-v1"
    assert "normalisation" not in TrainConfig().as_dict()       # older models keep their ids
    same = TrainConfig(epochs=1, batch_size=16, input_size=32, learning_rate=0.0, views=1, init_from=result.model_id)
    assert tuned.model_id != train_stamp_classifier(cat, ["PanSTARRS"], same, device="cpu").model_id
    n_models = cat.table_count("models")
    with pytest.raises(BinarycatError, match="Unknown normalisation 'peak'.*asinh-noise-v1"):
        train_stamp_classifier(cat, ["PanSTARRS"], TrainConfig(epochs=1, normalisation="peak"), device="cpu")
    assert cat.table_count("models") == n_models


def test_a_model_fine_tuned_with_survey_conditioning_starts_as_itself(easy):
    """``--arch resnet34-stem-film --init-from`` a plain model: its weights, zero modulation, and
    a network that evaluate and predict feed each stamp's survey."""
    cat, result, _ = easy
    config = TrainConfig(epochs=1, batch_size=16, input_size=32, learning_rate=0.0, init_from=result.model_id,
                         arch="resnet34-stem-film", views=1)
    tuned = train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu")
    before, _ = load_catalog_checkpoint(cat, model_row(cat, result.model_id)["checkpoint"])
    after, stored = load_catalog_checkpoint(cat, model_row(cat, tuned.model_id)["checkpoint"])
    assert stored["arch"] == "resnet34-stem-film" and stored["arch_kwargs"]["surveys"] == ["PanSTARRS"]
    assert all(torch.equal(w, after.net.get_parameter(n)) for n, w in before.named_parameters())
    assert all(not emb.weight.any() for emb in after.film)
    ev = evaluate_model(cat, tuned.model_id, on="test", device="cpu", baseline=False)
    assert ev.report["macro avg"]["f1"] > 0.75, ev.report
    n_stamps = cat.table_count("stamps")
    assert predict_stamps(cat, tuned.model_id, device="cpu").n_stamps == n_stamps
    with pytest.raises(BinarycatError, match="conditioned on PanSTARRS and cannot classify stamps of SDSS9"):
        predict_stamps(cat, tuned.model_id, ["SDSS9"], device="cpu")
    assert cat.sql("select count(*) from predictions where model_id = ?", [tuned.model_id]).fetchone()[0] == n_stamps


def test_weight_averaging_keeps_the_mean_of_the_averaged_epochs(easy):
    """Training is deterministic on CPU, so averaging epoch 2 alone, epoch 3 alone and both
    gives three models whose weights satisfy mean(w2, w3) = w23. The averaging does not depend on
    the network, so the cheaper torchvision stem, one view and 40 sources keep it quick."""
    cat = easy[0]

    def run(epochs, average_from):
        config = TrainConfig(epochs=epochs, batch_size=16, input_size=32, learning_rate=1e-3, lr_step=100,
                             patience=10, average_from=average_from, arch="resnet34", views=1)
        result = train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu", where=FEW)
        row = model_row(cat, result.model_id)
        model, _ = load_catalog_checkpoint(cat, row["checkpoint"])
        return dict(model.named_parameters()), row["metrics"], result

    w2, m2, _ = run(2, 2)
    w3, m3, _ = run(3, 3)
    w23, m23, both = run(3, 2)
    assert m2["averaged_epochs"] == [2, 2] and m3["averaged_epochs"] == [3, 3] and m23["averaged_epochs"] == [2, 3]
    assert [h.get("val_macro_f1_average") is not None for h in both.history] == [False, True, True]
    assert m23["val_macro_f1_average"] == both.history[-1]["val_macro_f1_average"]
    assert not all(torch.equal(w2[n], w3[n]) for n in w2)
    for n in w23:
        torch.testing.assert_close(w23[n], (w2[n] + w3[n]) / 2, rtol=1e-5, atol=1e-6)
    # a run that stops before the averaging starts keeps its best epoch
    _, m1, _ = run(1, 2)
    assert m1["averaged_epochs"] is None and m1["best_epoch"] == 1


def test_a_model_soup_is_the_mean_of_its_members_and_keeps_their_splits(easy):
    """``train --init-from A,B --epochs 0``: the stored weights are the mean of A's and B's, the
    splits theirs, and nothing is trained; members with different splits are refused."""
    cat, _, root = easy

    def run(**kw):
        config = TrainConfig(batch_size=16, input_size=32, learning_rate=1e-3, arch="resnet34", views=1, **kw)
        return train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu", where=FEW).model_id

    def weights(model_id):
        model, params = load_catalog_checkpoint(cat, model_row(cat, model_id)["checkpoint"])
        return dict(model.named_parameters()), params

    def splits(model_id):
        return dict(cat.sql("select source_id, split from splits where model_id = ?", [model_id]).fetchall())

    a = run(epochs=1)
    b = run(epochs=1, init_from=a, seed=1)
    out = CliRunner().invoke(app, ["--catalog", str(root / "cat"), "train", "--surveys", "PanSTARRS", "--arch",
                                   "resnet34", "--input-size", "32", "--views", "1", "--where", FEW,
                                   "--init-from", f"{a}, {b}", "--epochs", "0", "--format", "json"])
    assert out.exit_code == 0, out.output
    soup = json.loads(out.stdout)["model_id"]
    (wa, _), (wb, _), (ws, params) = weights(a), weights(b), weights(soup)
    assert not all(torch.equal(wa[n], wb[n]) for n in wa)
    for n in ws:
        torch.testing.assert_close(ws[n], (wa[n] + wb[n]) / 2, rtol=1e-5, atol=1e-6)
    assert params["init_from"] == [a, b] and params["epochs"] == 0
    assert splits(soup) == splits(a) == splits(b)
    metrics = model_row(cat, soup)["metrics"]
    assert metrics["history"] == [] and metrics["best_epoch"] == 0 and 0.0 <= metrics["best_val_macro_f1"] <= 1.0
    assert metrics["test"]["macro avg"]["support"] == metrics["n_test"] > 0

    other = run(epochs=1, split_seed=1)  # the same sources, split another way
    with pytest.raises(BinarycatError, match="split of .* must share their splits"):
        run(epochs=0, init_from=[a, other])
    with pytest.raises(BinarycatError, match="0 keeps the starting weights, so it needs init_from"):
        run(epochs=0)


def test_pair_margins_steer_training_and_the_head_is_not_stored(easy, tmp_path):
    """With ``aux_truth`` the margins' loss changes the trained weights (same seed, same stamps,
    weight 0 against 1), the stored network is the plain one, and its params say what it used."""
    cat, _, _ = easy
    truth = tmp_path / "truth.csv"
    with open(truth, "w", newline="") as f:
        rows = [(f"{i:05d}", "PanSTARRS", 1, 1, 2.0, FWHM, 0.7, 80.0) for i in range(0, 40, 2)]
        csv.writer(f).writerows([("source_id", "survey", "label", "is_binary", "separation_arcsec",
                                  "fwhm_arcsec", "flux_ratio", "companion_snr"), *rows])

    def run(weight):
        config = TrainConfig(epochs=1, batch_size=16, input_size=32, learning_rate=1e-3, views=1,
                             arch="resnet34", aux_truth=[str(truth)], aux_weight=weight)
        return train_stamp_classifier(cat, ["PanSTARRS"], config, device="cpu", where=FEW)

    plain, steered = run(0.0), run(1.0)
    a, _ = load_catalog_checkpoint(cat, model_row(cat, plain.model_id)["checkpoint"])
    b, params = load_catalog_checkpoint(cat, model_row(cat, steered.model_id)["checkpoint"])
    assert list(a.state_dict()) == list(build("resnet34").state_dict())
    assert list(b.state_dict()) == list(a.state_dict())
    assert not torch.equal(a.layer1[0].conv1.weight, b.layer1[0].conv1.weight)
    assert params["aux_truth"] == [str(truth)] and params["aux_weight"] == 1.0
    assert "aux_truth" not in TrainConfig().as_dict()
    elsewhere = tmp_path / "elsewhere.csv"
    with open(elsewhere, "w", newline="") as f:
        csv.writer(f).writerows([("source_id", "survey", "is_binary", "separation_arcsec", "fwhm_arcsec",
                                  "companion_snr"), ("99999", "PanSTARRS", 1, 2.0, 1.0, 50.0)])
    with pytest.raises(BinarycatError, match="No training stamp is a binary of the --aux-truth"):
        train_stamp_classifier(cat, ["PanSTARRS"], TrainConfig(epochs=1, input_size=32, aux_truth=[str(elsewhere)]),
                               device="cpu", where=FEW)
