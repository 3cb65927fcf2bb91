"""A tiny real training and prediction run on simulated stamps."""

import numpy as np
import pytest
import torch

from binarycat.catalog.sources import import_sources
from binarycat.errors import BinarycatError
from binarycat.ingest.labels import import_labels
from binarycat.ingest.simulate import simulate_sky
from binarycat.ingest.stamps import ingest_fits
from binarycat.model.checkpoints import load_checkpoint
from binarycat.model.data import augment_batch, split_sources
from binarycat.model.networks import stamp_resnet34
from binarycat.model.predict import predict_stamps
from binarycat.model.preprocess import normalise_stamp, stamp_to_input
from binarycat.model.train import TrainConfig, train_stamp_classifier
from binarycat.pipeline import init_catalog


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    sim = simulate_sky(root / "sim", n_sources=60, surveys=["HST", "2MASS"], seed=3)
    cat = init_catalog(root / "cat")
    import_sources(cat, sim.sources_csv)
    for s in ("HST", "2MASS"):
        ingest_fits(cat, [root / "sim" / s], s)
    import_labels(cat, sim.truth_csv, labeller="simulator")
    result = train_stamp_classifier(cat, ["HST", "2MASS"],
                                    TrainConfig(epochs=2, batch_size=32, input_size=32, patience=2))
    yield cat, result
    cat.close()


def test_resnet34_has_one_input_channel_and_two_logits():
    model = stamp_resnet34()
    assert model.conv1.in_channels == 1 and model.fc.out_features == 2
    out = model.eval()(torch.randn(3, 1, 64, 64))
    assert out.shape == (3, 2)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # logits, not probabilities


def test_split_keeps_each_source_in_one_split_and_is_stratified():
    sources = [f"{i:03d}" for i in range(200) for _ in range(3)]
    labels = [int(i % 4 == 0) for i in range(200) for _ in range(3)]
    split = split_sources(sources, labels, seed=1)
    assert set(split) == set(sources)
    assert split == split_sources(sources, labels, seed=1)
    assert split != split_sources(sources, labels, seed=2)
    binaries = [s for s in split if int(s) % 4 == 0]
    frac = {k: sum(split[s] == k for s in binaries) / len(binaries) for k in ("train", "validation", "test")}
    assert frac["train"] == pytest.approx(0.70, abs=0.03) and frac["test"] == pytest.approx(0.15, abs=0.03)


def test_preprocessing_is_robust_to_nan_and_resamples_to_input_size():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (40, 50)).astype(np.float32)
    img[20, 25] = 500
    img[0, :5] = np.nan
    x = stamp_to_input(img, 64)
    assert x.shape == (1, 64, 64) and torch.isfinite(x).all()
    n = normalise_stamp(img)
    assert n.max() == pytest.approx(1.0) and np.isfinite(n).all()


def test_augmentation_only_permutes_pixels():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    y = augment_batch(x, torch.Generator().manual_seed(0))
    for a, b in zip(x, y):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)


def test_training_records_model_split_and_checkpoint(trained):
    cat, result = trained
    row = cat.sql("select kind, surveys, checkpoint, split_seed from models where model_id = ?",
                  [result.model_id]).fetchone()
    assert row[0] == "stamp_classifier" and sorted(row[1]) == ["2MASS", "HST"]
    assert (cat.path / row[2]).is_file()
    splits = dict(cat.sql("select split, count(*) from splits where model_id = ? group by 1",
                          [result.model_id]).fetchall())
    assert set(splits) == {"train", "validation", "test"}
    n_sources = cat.sql("select count(distinct source_id) from stamps").fetchone()[0]
    assert sum(splits.values()) == n_sources
    assert result.n_test == result.report["macro avg"]["support"] > 0
    model, config = load_checkpoint(cat.path / row[2])
    assert config["input_size"] == 32 and config["normalisation"] == "asinh-mad-v1"


def test_prediction_fills_binary_flags_for_every_stamp(trained):
    cat, result = trained
    res = predict_stamps(cat, result.model_id)
    n_stamps = cat.table_count("stamps")
    assert res.n_stamps == n_stamps
    rows = cat.sql("select p_binary, flag, threshold from predictions where model_id = ?",
                   [result.model_id]).fetchall()
    assert len(rows) == n_stamps
    assert all(0.0 <= p <= 1.0 and f == (p >= t) for p, f, t in rows)
    assert cat.sql("select count(*) from binary_flags").fetchone()[0] == n_stamps
    summary = cat.sql("select source_id, n_surveys, n_surveys_binary from source_flags order by 1").fetchall()
    expected = cat.sql("select source_id, count(*), count(*) filter (where flag) from binary_flags "
                       "group by 1 order by 1").fetchall()
    assert summary == expected and len(summary) == cat.sql("select count(distinct source_id) from stamps").fetchone()[0]
    predict_stamps(cat, result.model_id)  # again: replaces, never duplicates
    assert cat.sql("select count(*) from predictions").fetchone()[0] == n_stamps


def test_unknown_model_is_a_clear_error(trained):
    cat, _ = trained
    with pytest.raises(BinarycatError, match="No model"):
        predict_stamps(cat, "nope")


def test_fixed_scale_geometry_keeps_angular_sizes():
    from scipy import ndimage

    from conftest import star_image

    # HST-like: 0.05"/px, a pair 0.4" apart along x -> 4 px apart at 0.1"/px
    hst = star_image(200, 0.05, 0.08, offsets=((-0.2, 0.0, 2e4), (0.2, 0.0, 2e4)), noise=0.5)
    x = stamp_to_input(hst, 64, pixel_scale_arcsec=0.05, input_scale_arcsec=0.1)[0].numpy()
    assert x.shape == (64, 64)
    peaks = np.argwhere((x == ndimage.maximum_filter(x, size=3)) & (x > 0.5))
    assert len(peaks) == 2 and abs(abs(peaks[0][1] - peaks[1][1]) - 4) <= 1
    # 2MASS-like: 1"/px, 10 px -> 100 px at 0.1"/px, cropped to 64: the same blob as a star
    # rendered at 0.1"/px in the first place
    from binarycat.model.preprocess import resample_to_scale

    tm = star_image(10, 1.0, 2.7, noise=0.0)
    y = resample_to_scale(tm, 64, pixel_scale_arcsec=1.0, input_scale_arcsec=0.1)[0].numpy()
    ref = resample_to_scale(star_image(100, 0.1, 2.7, noise=0.0), 64, 0.1, 0.1)[0].numpy()

    def width(a):
        return (a > a.max() / 2).sum(axis=1).max()

    assert abs(width(y) - width(ref)) <= 4 and width(y) > 20
    # without a scale the whole stamp is resampled
    assert stamp_to_input(tm, 64)[0].shape == (64, 64)
