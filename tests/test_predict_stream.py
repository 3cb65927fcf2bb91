"""Streaming prediction and batch preprocessing: same numbers as the one-stamp-at-a-time path."""

import json

import numpy as np
import pytest
import torch

from binarycat.catalog.arrays import load_stamp_arrays
from binarycat.catalog.sources import import_sources
from binarycat.errors import BinarycatError
from binarycat.ingest.simulate import simulate_sky
from binarycat.ingest.stamps import ingest_fits
from binarycat.model import predict as predict_mod
from binarycat.model.checkpoints import load_checkpoint, save_checkpoint
from binarycat.model.networks import build
from binarycat.model.predict import load_model, predict_stamps
from binarycat.model.preprocess import (
    GEOMETRY, NORMALISATION, NORMALISATIONS, NOISE_UNITS_DIVISOR, normalise_stamp, normalise_stamps,
    normalise_stamps_torch, row_medians, stamp_to_input, stamps_to_tensor,
)
from binarycat.pipeline import init_catalog

SURVEYS = ["PanSTARRS", "HST"]
SIZE = 32


def register(cat, model_id, *, temperature=None, seed=0, schema_version=None, views=None,
             normalisation=NORMALISATION):
    """An untrained ResNet34 saved and recorded in ``models`` the way training does."""
    torch.manual_seed(seed)
    config = {"arch": "resnet34", "input_size": SIZE, "input_scale_arcsec": 0.1, "threshold": 0.5,
              "normalisation": normalisation, "geometry": GEOMETRY, "surveys": SURVEYS,
              "schema_version": cat.schema_version if schema_version is None else schema_version}
    if temperature is not None:
        config["temperature"] = temperature
    if views is not None:
        config["views"] = views
    checkpoint = f"models/{model_id}.pt"
    save_checkpoint(cat.resolve(checkpoint), build("resnet34", in_channels=1, num_classes=2), config)
    with cat.transaction() as con:
        con.execute("insert or replace into models (model_id, kind, surveys, params, split_seed, metrics, "
                    "checkpoint) values (?, 'stamp_classifier', ?, ?, 0, '{}', ?)",
                    [model_id, SURVEYS, json.dumps(config), checkpoint])
    return model_id


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    sim = simulate_sky(root / "sim", n_sources=16, surveys=SURVEYS, seed=5)
    c = init_catalog(root / "cat")
    import_sources(c, sim.sources_csv)
    for s in SURVEYS:
        ingest_fits(c, [root / "sim" / s], s)
    register(c, "plain")
    register(c, "hot", temperature=2.5)             # the same weights (same seed), T = 2.5
    yield c
    c.close()


_REFERENCE = {}


def reference_logits(cat, model_id):
    """stamp_id -> logits: per-stamp preprocessing and a plain NCHW forward, no streaming."""
    key = (str(cat.path), model_id)
    if key not in _REFERENCE:
        _REFERENCE[key] = _reference_logits(cat, model_id)
    return _REFERENCE[key]


def _reference_logits(cat, model_id):
    row = cat.sql("select checkpoint from models where model_id = ?", [model_id]).fetchone()
    model, config = load_checkpoint(cat.resolve(row[0]))
    stamps = cat.sql("select stamp_id, pixel_scale_arcsec from stamps order by stamp_id").fetchall()
    arrays = load_stamp_arrays(cat, [s for s, _ in stamps])
    x = torch.stack([stamp_to_input(a, config["input_size"], scale, config["input_scale_arcsec"],
                                    config["normalisation"])
                     for a, (_, scale) in zip(arrays, stamps)])
    with torch.inference_mode():
        logits = model.eval()(x)
    return {s: logits[i] for i, (s, _) in enumerate(stamps)}


def stored(cat, model_id):
    return cat.sql("select stamp_id, source_id, survey, p_binary, flag, threshold from predictions "
                   "where model_id = ? order by stamp_id", [model_id]).fetchall()


def test_catalogue_has_several_shards_and_shapes(cat):
    n_shards, n_shapes = cat.sql("select count(distinct shard), count(distinct (height, width)) "
                                 "from stamps").fetchone()
    assert n_shards >= 3 and n_shapes == 2


@pytest.mark.parametrize("prefetch", [False, True])
def test_streaming_predict_equals_a_direct_forward(cat, prefetch):
    ref = reference_logits(cat, "plain")
    done = []
    res = predict_stamps(cat, "plain", batch_size=7, prefetch=prefetch,
                         progress=lambda d, t: done.append((d, t)))
    rows = stored(cat, "plain")
    assert res.n_stamps == len(rows) == len(ref) == cat.table_count("stamps")
    p_ref = {s: float(torch.softmax(v, 0)[1]) for s, v in ref.items()}
    assert max(abs(p - p_ref[s]) for s, _, _, p, _, _ in rows) <= 1e-5
    assert all(f == (p >= t) for _, _, _, p, f, t in rows)
    assert res.n_binary == sum(r[4] for r in rows)
    assert done and done[-1] == (len(rows), len(rows)) and [d for d, _ in done] == sorted(d for d, _ in done)
    by_stamp = {s: (p, f) for s, _, _, p, f, _ in rows}
    flags = cat.sql("select stamp_id, p_binary, flag from binary_flags where model_id = 'plain'").fetchall()
    assert flags and all(by_stamp[s] == (p, f) for s, p, f in flags)


def test_prediction_normalises_stamps_the_way_the_model_was_trained(cat):
    register(cat, "noise-units", normalisation="asinh-noise-v1")     # plain's weights, other inputs
    ref = reference_logits(cat, "noise-units")
    predict_stamps(cat, "noise-units", batch_size=6)
    rows = stored(cat, "noise-units")
    p_ref = {s: float(torch.softmax(v, 0)[1]) for s, v in ref.items()}
    assert len(rows) == len(ref) and max(abs(p - p_ref[s]) for s, _, _, p, _, _ in rows) <= 1e-5
    p_plain = {s: float(torch.softmax(v, 0)[1]) for s, v in reference_logits(cat, "plain").items()}
    assert max(abs(p_plain[s] - p_ref[s]) for s in ref) > 1e-3   # the normalisation changed the input


def test_predicting_twice_replaces_rows(cat):
    predict_stamps(cat, "plain", batch_size=5)
    first = stored(cat, "plain")
    predict_stamps(cat, "plain", batch_size=64)
    second = stored(cat, "plain")
    n = cat.table_count("stamps")
    assert len(first) == len(second) == n
    assert cat.sql("select count(*), count(distinct stamp_id) from predictions where model_id = 'plain'"
                   ).fetchone() == (n, n)
    assert [r[:3] for r in first] == [r[:3] for r in second]
    assert max(abs(a[3] - b[3]) for a, b in zip(first, second)) <= 1e-5
    summary = cat.sql("select source_id, n_surveys, n_surveys_binary from source_flags order by 1").fetchall()
    expected = cat.sql("select source_id, count(*), count(*) filter (where flag) from binary_flags "
                       "group by 1 order by 1").fetchall()
    assert summary == expected


def test_temperature_scales_the_logits(cat):
    ref = reference_logits(cat, "plain")
    res = predict_stamps(cat, "hot", batch_size=16)
    rows = stored(cat, "hot")
    assert res.n_stamps == len(rows) == len(ref)
    p_hot = {s: float(torch.softmax(v / 2.5, 0)[1]) for s, v in ref.items()}
    assert max(abs(p - p_hot[s]) for s, _, _, p, _, _ in rows) <= 1e-5
    p_plain = {s: float(torch.softmax(v, 0)[1]) for s, v in ref.items()}
    assert any(abs(p_hot[s] - p_plain[s]) > 1e-3 for s in ref)     # the temperature did something


def test_a_model_with_eight_views_averages_the_logits_of_the_rotated_stamps(cat):
    register(cat, "eight", views=8)             # the weights of "plain" (same seed)
    row = cat.sql("select checkpoint from models where model_id = 'eight'").fetchone()
    model, config = load_checkpoint(cat.resolve(row[0]))
    stamps = cat.sql("select stamp_id, pixel_scale_arcsec from stamps order by stamp_id").fetchall()
    x = stamps_to_tensor(load_stamp_arrays(cat, [s for s, _ in stamps]), SIZE, [p for _, p in stamps], 0.1)
    with torch.inference_mode():
        turned = [model(torch.rot90(x, k, (-2, -1)).flip(-1) if f else torch.rot90(x, k, (-2, -1)).contiguous())
                  for k in range(4) for f in (False, True)]
    p_ref = torch.softmax(torch.stack(turned).mean(0), 1)[:, 1]
    predict_stamps(cat, "eight", batch_size=6)
    rows = stored(cat, "eight")
    assert [r[0] for r in rows] == [s for s, _ in stamps]
    assert max(abs(r[3] - float(q)) for r, q in zip(rows, p_ref)) <= 1e-5
    p_plain = {r[0]: r[3] for r in stored(cat, "plain")} or {
        s: float(torch.softmax(v, 0)[1]) for s, v in reference_logits(cat, "plain").items()}
    assert any(abs(r[3] - p_plain[r[0]]) > 1e-4 for r in rows)


def test_an_interrupted_prediction_keeps_its_commits_and_a_rerun_completes(cat, monkeypatch):
    register(cat, "flaky", seed=1)
    calls = []
    real = predict_mod._write_predictions

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(predict_mod, "COMMIT_ROWS", 1)               # a commit per batch
    monkeypatch.setattr(predict_mod, "_write_predictions", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        predict_stamps(cat, "flaky", batch_size=6)
    kept = stored(cat, "flaky")
    assert 0 < len(kept) < cat.table_count("stamps")
    monkeypatch.setattr(predict_mod, "_write_predictions", real)
    res = predict_stamps(cat, "flaky", batch_size=6)
    assert res.n_stamps == len(stored(cat, "flaky")) == cat.table_count("stamps")


def test_a_checkpoint_of_another_schema_version_or_no_stamps(cat):
    register(cat, "old", schema_version=cat.schema_version - 1)
    with pytest.raises(BinarycatError, match="schema version"):
        predict_stamps(cat, "old")
    assert not stored(cat, "old")
    res = predict_stamps(cat, "plain", ["SDSS9"])                     # a survey with no stamps here
    assert (res.n_stamps, res.n_binary) == (0, 0)


def test_fast_model_loading_equals_load_checkpoint(cat):
    path = cat.resolve("models/plain.pt")
    fast, config = load_model(path, torch.device("cpu"))
    slow, config2 = load_checkpoint(path)
    assert config == config2 and config.get("temperature", 1.0) == 1.0
    x = torch.rand(3, 1, SIZE, SIZE)
    with torch.inference_mode():
        assert torch.allclose(fast(x), slow.eval()(x), atol=1e-5)


# --- batch preprocessing ------------------------------------------------------------------


def mixed_stamps(seed=0):
    """Stamps of several shapes and scales, with NaN and inf pixels and a flat image."""
    rng = np.random.default_rng(seed)
    arrays, scales = [], []
    for shape, scale, k in (((40, 40), 0.25, 5), ((25, 25), 0.396, 4), ((120, 120), 0.05, 4),
                            ((30, 44), 0.25, 3), ((40, 40), 0.2, 2), ((33, 33), None, 2)):
        for _ in range(k):
            a = rng.normal(0, 1, shape).astype(np.float32)
            a[shape[0] // 2, shape[1] // 2] += rng.uniform(50, 5000)
            arrays.append(a)
            scales.append(scale)
    arrays[1][3, :7] = np.nan
    arrays[10][0, 0] = np.inf
    arrays[6][:] = 2.0                                                # MAD = 0
    arrays[12][:60] = 0.0                                            # half the pixels equal
    return arrays, scales


@pytest.mark.parametrize("input_scale", [0.1, None])
def test_batch_preprocessing_equals_per_stamp(input_scale):
    arrays, scales = mixed_stamps()
    for size in (32, 64):
        fast = stamps_to_tensor(arrays, size, scales, input_scale)
        slow = torch.stack([stamp_to_input(a, size, s, input_scale) for a, s in zip(arrays, scales)])
        assert fast.shape == slow.shape == (len(arrays), 1, size, size)
        assert float((fast - slow).abs().max()) <= 1e-5
        assert torch.isfinite(fast).all()
    assert stamps_to_tensor([], 16).shape == (0, 1, 16, 16)


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_normalise_stamps_equals_normalise_stamp(normalisation):
    arrays, _ = mixed_stamps(1)
    square = [a for a in arrays if a.shape == (40, 40)]
    stack = np.stack(square)
    out = normalise_stamps(stack, normalisation)
    for a, b in zip(square, out):
        assert np.abs(normalise_stamp(a, normalisation) - b).max() <= 1e-6


def test_noise_units_keep_a_companions_brightness_whatever_its_primary():
    """A companion of peak S/N 5 reads the same next to a faint and a bright primary."""
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:64, 0:64] - 31.5
    blob = lambda dx, peak: peak * np.exp(-((x - dx) ** 2 + y**2) / (2 * 1.5**2))
    sky = rng.normal(0, 1, (64, 64))
    faint, bright = (blob(-12, p) + blob(12, 5.0) + sky for p in (30.0, 30000.0))
    peak_scaled = [normalise_stamp(a)[32, 43:45].mean() for a in (faint, bright)]
    noise_units = [normalise_stamp(a, "asinh-noise-v1")[32, 43:45].mean() for a in (faint, bright)]
    assert abs(noise_units[0] - noise_units[1]) < 0.01
    assert abs(noise_units[0] - np.arcsinh(5 / 3) / NOISE_UNITS_DIVISOR) < 0.05
    assert peak_scaled[0] > 1.5 * peak_scaled[1]                      # the peak scaling hides it
    with pytest.raises(BinarycatError, match="Unknown normalisation 'zscale'"):
        stamps_to_tensor([faint], 16, normalisation="zscale")


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_torch_normalisation_matches_numpy(normalisation):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (6, 31 * 31)).astype(np.float32)
    x[0, 10] = 3000.0
    x[1] = 4.0                                                        # flat
    x[2, :500] = 1.0
    y = rng.normal(0, 1, (4, 40 * 40)).astype(np.float32)            # even length
    for a in (x, y):
        ref = normalise_stamps(a.reshape(len(a), 1, -1), normalisation).reshape(len(a), -1)
        got = normalise_stamps_torch(torch.from_numpy(a), normalisation).numpy()
        assert np.abs(ref - got).max() <= 1e-5


@pytest.mark.parametrize("m", [50, 625, 9_000, 9_001, 40_000])
def test_row_medians_are_numpys_medians(m):
    rng = np.random.default_rng(m)
    a = rng.normal(0, 1, (7, m)).astype(np.float32)
    a[1] = 1.0                                                        # all equal
    a[2, : m // 2] = 3.0                                              # ties at the middle
    a[3] = np.abs(a[3])                                               # skewed, like |x - median|
    a[4] = np.sort(a[4])                                              # sorted: a biased sample
    assert np.array_equal(row_medians(a), np.median(a, axis=1))


def test_each_survey_is_flagged_at_its_own_stored_threshold_unless_one_is_given(cat):
    register(cat, "per-survey")
    fitted = {"rule": "validation-macro-f1-v1", "per_survey": {"PanSTARRS": 0.0, "HST": 1.0}}
    cat.sql("update models set metrics = ? where model_id = 'per-survey'", [json.dumps({"thresholds": fitted})])
    predict_stamps(cat, "per-survey", batch_size=8)
    rows = stored(cat, "per-survey")
    assert {s for _, _, s, _, _, _ in rows} == {"PanSTARRS", "HST"}
    for _, _, survey, p, flag, t in rows:
        assert t == fitted["per_survey"][survey] and flag == (p >= t)
    assert all(f for _, _, s, _, f, _ in rows if s == "PanSTARRS")
    assert not any(f for _, _, s, p, f, _ in rows if s == "HST" and p < 1.0)
    flags = dict(cat.sql("select stamp_id, flag from binary_flags where model_id = 'per-survey'").fetchall())
    assert flags and all(flags[s] == f for s, _, _, _, f, _ in rows if s in flags)
    predict_stamps(cat, "per-survey", threshold=0.25)
    assert {t for *_, t in stored(cat, "per-survey")} == {0.25}
    cat.sql("update models set metrics = ? where model_id = 'per-survey'",
            [json.dumps({"thresholds": {"per_survey": {"HST": 2}}})])
    with pytest.raises(BinarycatError, match="between 0 and 1"):
        predict_stamps(cat, "per-survey")
    assert {t for *_, t in stored(cat, "per-survey")} == {0.25}     # nothing stored was lost


def test_a_survey_conditioned_model_streams_each_stamp_with_its_own_survey(cat):
    """Batches that cross shards of both surveys give each stamp its own survey's modulation."""
    torch.manual_seed(3)
    model = build("resnet34-stem-film", input_size=SIZE, surveys=SURVEYS)
    for emb in model.film:
        torch.nn.init.normal_(emb.weight, std=0.5)      # surveys that really differ
    config = {"arch": "resnet34-stem-film", "arch_kwargs": {"input_size": SIZE, "surveys": SURVEYS},
              "input_size": SIZE, "input_scale_arcsec": 0.1, "threshold": 0.5, "normalisation": NORMALISATION,
              "geometry": GEOMETRY, "surveys": SURVEYS, "schema_version": cat.schema_version}
    save_checkpoint(cat.resolve("models/film.pt"), model, config)
    with cat.transaction() as con:
        con.execute("insert or replace into models (model_id, kind, surveys, params, split_seed, metrics, "
                    "checkpoint) values ('film', 'stamp_classifier', ?, ?, 0, '{}', 'models/film.pt')",
                    [SURVEYS, json.dumps(config)])
    stamps = cat.sql("select stamp_id, survey, pixel_scale_arcsec from stamps order by stamp_id").fetchall()
    x = torch.stack([stamp_to_input(a, SIZE, scale, 0.1)
                     for a, (_, _, scale) in zip(load_stamp_arrays(cat, [s for s, _, _ in stamps]), stamps)])
    model.eval()
    with torch.inference_mode():
        own = torch.softmax(model(x, torch.tensor([SURVEYS.index(v) for _, v, _ in stamps])), 1)[:, 1]
        swapped = torch.softmax(model(x, torch.tensor([1 - SURVEYS.index(v) for _, v, _ in stamps])), 1)[:, 1]
    assert (own - swapped).abs().max() > 1e-3          # the survey changes the answer
    predict_stamps(cat, "film", batch_size=7)
    p = np.array([r[3] for r in stored(cat, "film")])
    assert np.abs(p - own.numpy()).max() <= 1e-5
    with pytest.raises(BinarycatError, match="cannot classify stamps of SDSS9"):
        predict_stamps(cat, "film", ["PanSTARRS", "SDSS9"])
    assert len(stored(cat, "film")) == len(stamps)
