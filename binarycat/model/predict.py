"""Predicting with a trained stamp classifier and writing ``predictions`` rows."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import torch

from binarycat.catalog.arrays import read_array_shard
from binarycat.catalog.flags import update_binary_flags
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.checkpoints import load_checkpoint
from binarycat.model.device import pick_device
from binarycat.model.preprocess import stamps_to_tensor
from binarycat.model.train import MODEL_KIND, predict_logits

__all__ = ["PredictResult", "latest_model_id", "model_row", "predict_stamps"]


@dataclass
class PredictResult:
    model_id: str
    n_stamps: int
    n_binary: int
    seconds: float


def model_row(catalog: Catalog, model_id: str | None = None, *, kind: str = MODEL_KIND) -> dict:
    """The ``models`` row of ``model_id``, or of the newest model of ``kind``."""
    if model_id is None:
        row = catalog.sql(
            "select * from models where kind = ? order by created_at desc limit 1", [kind]
        ).fetchone()
        if row is None:
            command = "eb train" if kind != MODEL_KIND else "train"
            raise BinarycatError(f"No trained model in the catalogue; run `binarycat {command}` first.")
    else:
        row = catalog.sql("select * from models where model_id = ?", [model_id]).fetchone()
        if row is None:
            raise BinarycatError(f"No model {model_id!r} in the catalogue.")
    cols = [d[0] for d in catalog.con.description]
    out = dict(zip(cols, row))
    for key in ("params", "metrics"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def latest_model_id(catalog: Catalog) -> str:
    return model_row(catalog)["model_id"]


def predict_stamps(
    catalog: Catalog,
    model_id: str | None = None,
    surveys: list[str] | None = None,
    *,
    threshold: float | None = None,
    batch_size: int = 256,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PredictResult:
    """Predict every stored stamp of ``surveys`` (default: the model's) and store the results.

    Stamps are read shard by shard from the Parquet store; ``p_binary`` is the softmax
    probability of the binary class and ``flag`` is ``p_binary >= threshold`` (default: the
    model's). Predicting again with the same model replaces its earlier rows.
    """
    t0 = time.perf_counter()
    row = model_row(catalog, model_id)
    model_id = row["model_id"]
    dev = pick_device(device)
    model, config = load_checkpoint(catalog.resolve(row["checkpoint"]), dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    threshold = config.get("threshold", 0.5) if threshold is None else threshold
    surveys = surveys or list(row["surveys"])
    stamps = catalog.sql(
        "select stamp_id, source_id, survey, shard, shard_row, pixel_scale_arcsec from stamps "
        "where survey in (select unnest(?)) order by shard, shard_row",
        [surveys],
    ).fetchall()
    by_shard: dict[str, list[tuple]] = defaultdict(list)
    for r in stamps:
        by_shard[r[3]].append(r)
    done, n_binary = 0, 0
    for shard, rows in by_shard.items():
        arrays = read_array_shard(catalog.resolve(shard), [r[4] for r in rows])
        x = stamps_to_tensor(arrays, config["input_size"], [r[5] for r in rows],
                             config.get("input_scale_arcsec"))
        p = torch.softmax(predict_logits(model, x, dev, batch_size), dim=1)[:, 1].tolist()
        records = [(r[0], model_id, r[1], r[2], float(pi), bool(pi >= threshold), float(threshold))
                   for r, pi in zip(rows, p)]
        with catalog.transaction() as con:
            con.executemany(
                "insert or replace into predictions "
                "(stamp_id, model_id, source_id, survey, p_binary, flag, threshold) values (?, ?, ?, ?, ?, ?, ?)",
                records,
            )
            update_binary_flags(con, model_id, [r[0] for r in records])
        done += len(rows)
        n_binary += sum(r[5] for r in records)
        if progress:
            progress(done, len(stamps))
    return PredictResult(model_id, done, n_binary, time.perf_counter() - t0)
