"""CALNet, its training on tiny data, EB labels, and the TESS flags in the catalogue."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from binarycat.catalog.lightcurve_store import store_lightcurves
from binarycat.errors import BinarycatError
from binarycat.ingest.labels import import_labels
from binarycat.model.calnet import CALNet, LC_LENGTH, PERIODOGRAM_LENGTH, probabilities
from binarycat.model.eb_data import EBFeatures, split_by_tic
from binarycat.model.eb_train import (EBTrainConfig, choose_threshold, load_eb_model, predict_eclipsing,
                                      train_eb_classifier)
from binarycat.queries.runner import get_query, run_sql
from tests.conftest import add_sources
from tests.test_lightcurves import make_lc


def test_calnet_returns_logits_not_probabilities():
    torch.manual_seed(0)
    net = CALNet(width=8).eval()
    out = net(torch.rand(3, LC_LENGTH), torch.rand(3, PERIODOGRAM_LENGTH))
    assert out.shape == (3, 2)
    assert not torch.allclose(out.sum(dim=1), torch.ones(3))  # a softmax in forward would sum to 1
    p = probabilities(out)
    assert torch.all((p > 0) & (p < 1))


def easy_features(n: int, seed: int = 0) -> EBFeatures:
    """EBs: flat curves with narrow dips and a periodogram peak at the dip period;
    others: sinusoids with a peak elsewhere. Easy, but the network must learn it."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, LC_LENGTH)
    lcs, pgs, labels = [], [], []
    for i in range(n):
        label = i % 2
        period = rng.uniform(0.05, 0.2)
        phase = (x / period + rng.uniform()) % 1
        if label:
            lc = 1 - 0.6 * (np.abs(phase - 0.5) < 0.03) - 0.3 * (phase < 0.03)
        else:
            lc = 0.5 + 0.4 * np.sin(2 * np.pi * phase)
        lc = lc + rng.normal(0, 0.03, LC_LENGTH)
        pg = np.exp(-0.5 * ((np.arange(PERIODOGRAM_LENGTH) - (700 if label else 300)) / 10) ** 2)
        lcs.append((lc - lc.min()) / np.ptp(lc))
        pgs.append(pg + rng.uniform(0, 0.1, PERIODOGRAM_LENGTH))
        labels.append(label)
    return EBFeatures([f"TIC{100 + i}-s0006" for i in range(n)], np.arange(100, 100 + n), np.array(lcs),
                      np.array(pgs), np.full(n, 1.0), np.array(labels))


def test_split_by_tic_keeps_every_star_in_one_split():
    tics = np.repeat(np.arange(40), 3)  # three sectors per star
    labels = np.repeat(np.arange(40) % 2, 3)
    split = split_by_tic(tics, labels, seed=1)
    assert set(split) == set(range(40))
    assert {v for v in split.values()} == {"train", "validation", "test"}


def test_threshold_reaches_the_target_recall():
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    y = np.array([1, 1, 1, 1, 0, 0])
    assert choose_threshold(p, y, 0.99) == 0.2       # all four EBs at or above it
    assert choose_threshold(p, y, 0.75) == 0.3
    assert choose_threshold(np.array([0.9, 0.95]), np.array([1, 1]), 0.99) == 0.5  # never above 0.5


def test_tiny_training_run_beats_chance_and_predicts_into_the_catalogue(catalog):
    feats = easy_features(80)
    add_sources(catalog, [(f"s{i}", 10.0 + i * 0.01, 5.0) for i in range(80)])
    store_lightcurves(catalog, [make_lc(100 + i, 10.0 + i * 0.01, 5.0, n=2100, seed=i) for i in range(80)])
    config = EBTrainConfig(epochs=8, batch_size=16, width=8, patience=8, amplitude=False)
    res = train_eb_classifier(catalog, feats, config, preprocessing={"version": "test"}, device="cpu")
    assert res.report["accuracy"] > 0.75, res.report        # chance is 0.5
    assert catalog.table_count("eb_splits") == 80
    row = catalog.sql("select kind, surveys from models where model_id = ?", [res.model_id]).fetchone()
    assert row == ("eb_calnet", ["TESS"])

    model, config_loaded, _, dev = load_eb_model(catalog, device="cpu")
    out = predict_eclipsing(catalog, feats, model, config_loaded, res.model_id, dev)
    assert out.n_lightcurves == 80
    again = predict_eclipsing(catalog, feats, model, config_loaded, res.model_id, dev)
    assert again.n_eclipsing == out.n_eclipsing and catalog.table_count("eb_predictions") == 80
    flags = catalog.sql("select count(*), count(*) filter (where flag) from binary_flags where survey = 'TESS'"
                        ).fetchone()
    assert flags == (80, out.n_eclipsing)
    # the same model and input give the same probability twice on CPU
    p1 = catalog.sql("select p_binary from eb_predictions order by lightcurve_id").fetchall()
    predict_eclipsing(catalog, feats, model, config_loaded, res.model_id, dev)
    assert catalog.sql("select p_binary from eb_predictions order by lightcurve_id").fetchall() == p1


def test_tess_flags_take_the_most_probable_sector_and_feed_candidate_triples(catalog):
    add_sources(catalog, [("v", 30.0, 0.0), ("w", 31.0, 0.0)])
    store_lightcurves(catalog, [make_lc(1, 30.0, 0.0, sector=5, n=2100), make_lc(1, 30.0, 0.0, sector=6, n=2100),
                                make_lc(2, 31.0, 0.0, n=2100)])
    with catalog.transaction() as con:
        con.execute("insert into models (model_id, kind) values ('m', 'stamp_classifier'), ('e', 'eb_calnet')")
        con.execute("insert into predictions (stamp_id, model_id, source_id, survey, p_binary, flag, threshold) "
                    "values ('x', 'm', 'v', 'HST', 0.9, true, 0.5), ('y', 'm', 'w', 'HST', 0.2, false, 0.5)")
        con.execute("insert into eb_predictions (lightcurve_id, model_id, tic_id, sector, source_id, p_binary, "
                    "flag, threshold, best_period_days) values "
                    "('TIC1-s0005', 'e', 1, 5, 'v', 0.3, false, 0.5, 2.5), "
                    "('TIC1-s0006', 'e', 1, 6, 'v', 0.97, true, 0.5, 1.25), "
                    "('TIC2-s0006', 'e', 2, 6, 'w', 0.99, true, 0.5, 0.4)")
    from binarycat.catalog.flags import rebuild_binary_flags

    rebuild_binary_flags(catalog)
    tess = catalog.sql("select source_id, p_binary, stamp_id from binary_flags where survey = 'TESS' "
                       "order by source_id").fetchall()
    assert tess == [("v", 0.97, "TIC1-s0006"), ("w", 0.99, "TIC2-s0006")]
    triples = run_sql(catalog.con, get_query("candidate_triples").sql).to_pylist()
    assert [(t["source_id"], t["visual_in"], t["tic_id"], t["sector"], t["best_period_days"]) for t in triples] \
        == [("v", "HST", 1, 6, 1.25)]                     # w is eclipsing but not a visual pair
    summary = catalog.sql("select n_surveys_binary, binary_in from source_flags where source_id = 'v'").fetchone()
    assert summary == (2, "HST,TESS")


def test_eb_labels_import_by_tic(catalog, tmp_path):
    path = tmp_path / "lightcurve_truth.csv"
    path.write_text("tic_id,sector,label,kind\n11,6,1,EA\n12,6,0,spots\n")
    res = import_labels(catalog, path)
    assert (res.added, res.changed) == (2, 0)
    assert import_labels(catalog, path).unchanged == 2
    assert catalog.sql("select tic_id, label, kind from latest_eb_labels order by tic_id").fetchall() == [
        (11, 1, "EA"), (12, 0, "spots")]
    path.write_text("tic_id,label\n11,2\n")
    with pytest.raises(BinarycatError, match="labels must be 0 or 1"):
        import_labels(catalog, path)
    path.write_text("tic_id,label\n-4,1\n")
    with pytest.raises(BinarycatError, match="positive integers"):
        import_labels(catalog, path)


def test_amplitude_scalars_give_back_the_depth_min_max_removed():
    from binarycat.model.eb_data import amplitude_scalars

    np.testing.assert_allclose(amplitude_scalars(0.7, 1.1), [(np.log10(0.3) + 2) / 2, 0.5], rtol=1e-6)
    shallow, deep = amplitude_scalars(0.995, 1.001), amplitude_scalars(0.7, 1.001)
    assert deep[0] > shallow[0] and deep[1] == shallow[1]
    assert amplitude_scalars(1.0, 1.0).tolist() == [-1.0, -1.0]      # floors at 1e-4
    net = CALNet(width=8, n_scalars=2).eval()
    with pytest.raises(ValueError, match="pass them"):
        net(torch.rand(1, LC_LENGTH), torch.rand(1, PERIODOGRAM_LENGTH))
    assert net(torch.rand(1, LC_LENGTH), torch.rand(1, PERIODOGRAM_LENGTH), torch.zeros(1, 2)).shape == (1, 2)
