"""Training CALNet on labelled light curves, and predicting eclipsing binaries with it."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from binarycat.catalog.flags import update_eb_flags
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.checkpoints import load_catalog_checkpoint, save_checkpoint
from binarycat.model.device import autocast, pick_device
from binarycat.model.eb_data import N_SCALARS, EBDataset, EBFeatures, split_by_tic
from binarycat.model.epochs import train_epoch
from binarycat.model.metrics import classification_report
from binarycat.model.networks import build
from binarycat.model.predict import model_row

__all__ = ["EB_CLASS_NAMES", "EB_MODEL_KIND", "EBTrainConfig", "EBTrainResult", "EBPredictResult",
           "choose_threshold", "eb_logits", "predict_eclipsing", "train_eb_classifier"]

EB_MODEL_KIND = "eb_calnet"
EB_CLASS_NAMES = ("not EB", "EB")


@dataclass
class EBTrainConfig:
    """Training settings of CALNet: Adam with a cosine learning-rate decay over ``epochs``.

    Attributes
    ----------
    epochs : int
        Most epochs; training stops when validation F1 of the EB class has not improved for
        ``patience`` epochs and the best epoch's weights are kept.
    reverse : bool
        Also augment by time reversal (see `binarycat.model.eb_data.EBDataset`).
    amplitude : bool
        Fuse the curve's depth and rise (`binarycat.model.eb_data.amplitude_scalars`) with the
        two branches; False trains the published CALNet.
    target_recall : float
        The decision threshold is the highest one (at most 0.5) whose recall of EBs on the
        validation split reaches this; recall is what the CALNet paper optimises (99.1 %).
    """

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 15
    width: int = 16
    dropout: float = 0.3
    seed: int = 0
    split_seed: int = 0
    target_recall: float = 0.99
    amplitude: bool = True
    reverse: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class EBTrainResult:
    model_id: str
    report: dict
    threshold: float
    history: list = field(default_factory=list)
    n_train: int = 0
    n_validation: int = 0
    n_test: int = 0
    seconds: float = 0.0
    checkpoint: str = ""


def eb_logits(model, lc: torch.Tensor, periodogram: torch.Tensor, scalars: torch.Tensor,
              device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Logits for many light curves, in batches, in inference mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(lc), batch_size):
            with autocast(device):
                out.append(model(lc[i:i + batch_size].to(device), periodogram[i:i + batch_size].to(device),
                                 scalars[i:i + batch_size].to(device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 2)


def _p_eb(model, features: EBFeatures, device) -> np.ndarray:
    logits = eb_logits(model, torch.from_numpy(features.lc), torch.from_numpy(features.periodogram),
                       torch.from_numpy(features.scalars), device)
    return torch.softmax(logits, dim=1)[:, 1].numpy().astype(np.float64)


def choose_threshold(p: np.ndarray, y: np.ndarray, target_recall: float, ceiling: float = 0.5) -> float:
    """Highest threshold <= ``ceiling`` whose recall of class 1 is >= ``target_recall``."""
    pos = np.sort(p[y == 1])
    if pos.size == 0:
        return ceiling
    k = int(np.floor((1.0 - target_recall) * pos.size + 1e-9))  # positives allowed below it
    return float(min(ceiling, pos[k]))


def _model_id(config: EBTrainConfig, ids: list[str], prep: str) -> str:
    h = hashlib.sha256(json.dumps([config.as_dict(), prep, sorted(ids)]).encode()).hexdigest()
    return f"calnet-{h[:10]}"


def train_eb_classifier(
    catalog: Catalog, features: EBFeatures, config: EBTrainConfig | None = None, *,
    preprocessing: dict | None = None, device: str | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    on_wait: Callable[[str], object] | None = None,
) -> EBTrainResult:
    """Train CALNet on labelled light curves and record it in ``models`` and ``eb_splits``.

    Stars (TIC ids) are split 70/15/15, stratified by label, so the sectors of one star are
    never in two splits. The best epoch by validation F1 of the EB class is kept; the
    threshold is chosen on the validation split (see `EBTrainConfig.target_recall`); the
    report is measured on the test split.

    Parameters
    ----------
    features : EBFeatures
        Light curves with ``label`` 0 or 1 (rows with -1 are ignored).
    preprocessing : dict, optional
        A description of how ``features`` were made, stored with the model so prediction
        prepares light curves the same way.
    on_wait : callable, optional
        Called with a sentence if, when training ends, another process holds the catalogue's
        database file: it is released while the network trains (`Catalog.released`).
    """
    config = config or EBTrainConfig()
    t0 = time.perf_counter()
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    features = features.subset(features.label >= 0)
    if len(features) == 0:
        raise BinarycatError("No labelled light curves; import eclipsing-binary labels first.")
    split_of = split_by_tic(features.tic_id, features.label, config.split_seed)
    split = np.array([split_of[int(t)] for t in features.tic_id])
    parts = {name: features.subset(split == name) for name in ("train", "validation", "test")}
    for name, part in parts.items():
        if len(part) == 0 or len(set(part.label.tolist())) < 2:
            raise BinarycatError(
                f"Too few labelled light curves: the {name} split needs eclipsing binaries and others.")

    # The network trains on the light curves in memory; releasing the database file meanwhile
    # lets other processes query or ingest into the catalogue.
    with catalog.released(on_wait=on_wait):
        loader = DataLoader(EBDataset(parts["train"], augment=True, reverse=config.reverse, seed=config.seed),
                            batch_size=config.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.seed))
        arch_kwargs = {"width": config.width, "dropout": config.dropout,
                       "n_scalars": N_SCALARS if config.amplitude else 0}
        model = build("calnet", **arch_kwargs).to(dev)
        counts = np.bincount(parts["train"].label, minlength=2).astype(float)
        weights = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=dev)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
        opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)

        def batch_loss(batch):
            lc, pg, sc, y = (t.to(dev) for t in batch)
            with autocast(dev):
                return loss_fn(model(lc, pg, sc).float(), y), len(y)

        best, best_state, best_epoch, history = -1.0, None, 0, []
        for epoch in range(1, config.epochs + 1):
            mean_loss = train_epoch(model, loader, opt, batch_loss)
            sched.step()
            p_val = _p_eb(model, parts["validation"], dev)
            rep = classification_report(parts["validation"].label, p_val >= 0.5, EB_CLASS_NAMES)
            score = rep["EB"]["f1"] + 1e-3 * rep["macro avg"]["f1"]
            info = {"epoch": epoch, "loss": mean_loss, "val_f1_eb": rep["EB"]["f1"],
                    "val_recall_eb": rep["EB"]["recall"]}
            history.append(info)
            if score > best:
                best, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
            if progress:
                progress(epoch, config.epochs, info)
            if epoch - best_epoch >= config.patience:
                break
        model.load_state_dict(best_state)

        threshold = choose_threshold(_p_eb(model, parts["validation"], dev), parts["validation"].label,
                                     config.target_recall)
        p_test = _p_eb(model, parts["test"], dev)
        report = classification_report(parts["test"].label, p_test >= threshold, EB_CLASS_NAMES)

    model_id = _model_id(config, features.lightcurve_id, json.dumps(preprocessing or {}, sort_keys=True))
    checkpoint = f"models/{model_id}.pt"
    model_config = {**config.as_dict(), "arch": "calnet", "arch_kwargs": arch_kwargs,
                    "threshold": threshold, "preprocessing": preprocessing or {}, "best_epoch": best_epoch,
                    "schema_version": catalog.schema_version}
    save_checkpoint(catalog.resolve(checkpoint), model, model_config)
    metrics = {"test": report, "best_epoch": best_epoch, "history": history, "threshold": threshold,
               "n_train": len(parts["train"]), "n_validation": len(parts["validation"]),
               "n_test": len(parts["test"])}
    with catalog.transaction() as con:
        con.execute("delete from eb_splits where model_id = ?", [model_id])
        con.execute(
            "insert or replace into models (model_id, kind, surveys, params, split_seed, metrics, checkpoint) "
            "values (?, ?, ?, ?, ?, ?, ?)",
            [model_id, EB_MODEL_KIND, ["TESS"], json.dumps(model_config), config.split_seed,
             json.dumps(metrics), checkpoint])
        con.executemany("insert into eb_splits (model_id, tic_id, split) values (?, ?, ?)",
                        [(model_id, t, s) for t, s in sorted(split_of.items())])
    return EBTrainResult(model_id, report, threshold, history, len(parts["train"]),
                         len(parts["validation"]), len(parts["test"]), time.perf_counter() - t0, checkpoint)


@dataclass
class EBPredictResult:
    model_id: str
    n_lightcurves: int
    n_eclipsing: int
    seconds: float


def load_eb_model(catalog: Catalog, model_id: str | None = None, device: str | None = None):
    """``(model, config, models row, device)`` of ``model_id`` or the newest CALNet."""
    row = model_row(catalog, model_id, kind=EB_MODEL_KIND)
    if row["kind"] != EB_MODEL_KIND:
        raise BinarycatError(f"Model {row['model_id']!r} is a {row['kind']}, not an eclipsing-binary model.")
    dev = pick_device(device)
    model, config = load_catalog_checkpoint(catalog, row["checkpoint"], dev)
    return model, config, row, dev


def predict_eclipsing(
    catalog: Catalog, features: EBFeatures, model, config: dict, model_id: str, device,
    *, threshold: float | None = None, sectors: dict | None = None, batch: int = 512,
) -> EBPredictResult:
    """Write ``eb_predictions`` for ``features`` and update the TESS flags in ``binary_flags``.

    Predicting again with the same model replaces its earlier rows.
    """
    t0 = time.perf_counter()
    threshold = float(config.get("threshold", 0.5) if threshold is None else threshold)
    meta = {lid: (sector, sid) for lid, sector, sid in catalog.sql(
        "select lightcurve_id, sector, source_id from lightcurves where lightcurve_id in (select unnest(?))",
        [features.lightcurve_id]).fetchall()}
    n_eb = 0
    for start in range(0, len(features), batch):
        part = features.subset(np.arange(start, min(start + batch, len(features))))
        p = _p_eb(model, part, device)
        rows = []
        for lid, tic, pi, period in zip(part.lightcurve_id, part.tic_id, p, part.best_period):
            sector, sid = meta[lid]
            rows.append((lid, model_id, int(tic), int(sector), sid, float(pi), bool(pi >= threshold),
                         threshold, float(period)))
        with catalog.transaction() as con:
            con.executemany(
                "insert or replace into eb_predictions (lightcurve_id, model_id, tic_id, sector, source_id, "
                "p_binary, flag, threshold, best_period_days) values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            update_eb_flags(con, model_id, [r[0] for r in rows])
        n_eb += sum(r[6] for r in rows)
    return EBPredictResult(model_id, len(features), n_eb, time.perf_counter() - t0)
