"""Training the stamp classifier on labelled stamps of the catalogue."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.auxiliary import PairMarginHead, margin_loss, margin_targets, read_pair_geometry
from binarycat.model.calibration import expected_calibration_error, fit_temperature, probabilities
from binarycat.model.checkpoints import load_catalog_checkpoint, save_checkpoint
from binarycat.model.data import StampDataset, labelled_stamps, split_sources
from binarycat.model.device import adam, autocast, pick_device
from binarycat.model.epochs import train_epoch
from binarycat.model.metrics import classification_report, survey_reports
from binarycat.model.networks import build, conditioning_surveys, stamp_logits
from binarycat.model.preprocess import GEOMETRY, NORMALISATION, check_normalisation
from binarycat.model.soup import average_weights
from binarycat.model.symmetry import VIEW_COUNTS, view_averaged_logits
from binarycat.model.thresholds import fit_survey_thresholds, stamp_thresholds, threshold_table

__all__ = ["TrainConfig", "TrainResult", "evaluate_split", "precise_batchnorm", "train_stamp_classifier"]

MODEL_KIND = "stamp_classifier"
#: The angular field every stamp is cut to before it reaches the network: 2.5" (the widest
#: pair of the definition) either side of the centre plus a margin for the companion's PSF.
DEFAULT_FIELD_ARCSEC = 6.4
#: ``TrainConfig.thresholds``: fitted per survey on the validation split, or one fixed threshold.
THRESHOLD_CHOICES = ("validation", "fixed")


@dataclass
class TrainConfig:
    """Training settings; defaults follow the paper (40 epochs, Adam, step learning rate).

    Attributes
    ----------
    epochs : int
        Most epochs to run; training stops earlier when validation macro-F1 has not improved
        for ``patience`` epochs, and the best epoch's weights are kept. 0 (with ``init_from``)
        trains nothing: the starting weights are calibrated, given thresholds and tested as
        they are, e.g. to score the average of several models.
    input_size : int
        Model input, pixels a side.
    field_arcsec : float or None
        The input geometry rule: every stamp is resampled to ``field_arcsec / input_size``
        arcsec per pixel and centre-cropped to ``input_size`` pixels, so every survey reaches
        the network on one angular scale (see `binarycat.model.preprocess`). ``None``
        resamples the whole stamp to ``input_size`` whatever its angular size.
    arch : str
        ``"resnet34-stem"`` (ResNet34 behind the custom stem for small stamps),
        ``"resnet34-stem-film"`` (the same, told each stamp's survey by per-survey feature
        modulation; it can start from a ``"resnet34-stem"`` model with ``init_from``) or
        ``"resnet34"`` (torchvision's own stem); see `binarycat.model.networks`.
    noise_augment : float
        Largest extra noise of the noise re-draw augmentation, as a fraction of each stamp's
        own noise (`binarycat.model.data.augment_batch`); 0 turns it off.
    max_minutes : float or None
        Wall-clock budget: no new epoch starts once this many minutes have passed, and the
        best epoch so far is kept (``metrics.stopped`` says why training ended).
    views : int
        1 or 8: the model's logits are averaged over this many flips and 90-degree rotations
        of each stamp (`binarycat.model.symmetry`) for calibration, the test report,
        ``evaluate`` and ``predict``. The best epoch is chosen on single-view validation F1,
        which costs an eighth.
    init_from : str or None
        Fine-tune: start from this stored model's weights instead of a random initialisation
        (same ``arch``, ``input_size`` and ``field_arcsec``). Sources it was trained,
        validated or tested on keep their split, so its test stamps stay unseen; new sources
        are split 70/15/15 among themselves. A list of models starts from the uniform average
        of their weights (`binarycat.model.soup`); they must share their splits, and should
        descend from one another or from one common model, as a fine-tuned lineage does.
    average_from : int or None
        Stochastic weight averaging (Izmailov et al. 2018): from this epoch on, the weights at
        the end of every epoch are averaged (`torch.optim.swa_utils.AveragedModel`), the
        average's BatchNorm statistics are recomputed on training stamps, and the average is
        the model kept, whatever epoch scored best. An average of nearby weights generalises
        better than any one of them and spares the choice of one epoch by a noisy validation
        score. Use it with a flat learning rate over the averaged epochs (a ``lr_step`` beyond
        ``epochs``). Early stopping still follows single epochs. ``None``: the best epoch by
        validation macro-F1 is kept.
    threshold : float
        The fixed decision threshold on calibrated ``p_binary``: the one used to choose the
        best epoch, and every survey's when ``thresholds`` is ``"fixed"``.
    thresholds : {"validation", "fixed"}
        ``"validation"``: after calibration each survey gets its own threshold, fitted on its
        validation stamps (`binarycat.model.thresholds`); ``predict`` flags with them and the
        test report uses them (the report at ``threshold`` is kept beside it).
    aux_truth : list of str or None
        Tables of pair geometry (the simulator's ``truth.csv`` columns): while training, a head
        on the network's pooled features also regresses each binary's two margins from the
        label rule, separation / FWHM and companion S/N / 5 (`binarycat.model.auxiliary`). The
        head is dropped afterwards; the stored network is the plain classifier.
    aux_weight : float
        Weight of that regression's smooth-L1 loss against the cross-entropy.
    normalisation : str
        The per-stamp normalisation (`binarycat.model.preprocess`), stored with the model and
        used again by ``evaluate`` and ``predict``: ``"asinh-mad-v1"`` scales every stamp to its
        own peak, ``"asinh-noise-v1"`` keeps pixels in units of the stamp's noise. A fine-tuning
        run may change it; the network then learns the new scale from its parent's features.
    """

    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 3e-4
    lr_step: int = 10
    lr_gamma: float = 0.5
    patience: int = 10
    input_size: int = 64
    field_arcsec: float | None = DEFAULT_FIELD_ARCSEC
    seed: int = 0
    split_seed: int = 0
    arch: str = "resnet34-stem"
    threshold: float = 0.5
    noise_augment: float = 0.3
    max_minutes: float | None = None
    views: int = 8
    init_from: str | list[str] | None = None
    average_from: int | None = None
    thresholds: str = "validation"
    aux_truth: list[str] | None = None
    aux_weight: float = 0.1
    normalisation: str = NORMALISATION

    @property
    def starting_models(self) -> list[str]:
        """The models ``init_from`` names (none, one, or several to average)."""
        if not self.init_from:
            return []
        return [self.init_from] if isinstance(self.init_from, str) else list(self.init_from)

    @property
    def input_scale_arcsec(self) -> float | None:
        """Arcsec per model-input pixel (None: the whole stamp is resampled)."""
        return self.field_arcsec / self.input_size if self.field_arcsec else None

    @property
    def arch_kwargs(self) -> dict:
        kwargs = {"in_channels": 1, "num_classes": 2}
        if self.arch in ("resnet34-stem", "resnet34-stem-film"):
            kwargs["input_size"] = self.input_size
        return kwargs

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        if not self.aux_truth:  # runs without the auxiliary head keep the ids they always had
            del out["aux_truth"], out["aux_weight"]
        if self.normalisation == NORMALISATION:  # and so do runs with the first normalisation
            del out["normalisation"]
        return out


@dataclass
class TrainResult:
    """What training produced: the model id, the test report overall and per survey, and timings."""

    model_id: str
    report: dict
    per_survey: dict
    history: list = field(default_factory=list)
    n_train: int = 0
    n_validation: int = 0
    n_test: int = 0
    seconds: float = 0.0
    checkpoint: str = ""
    calibration: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)


def _arch_kwargs(config: TrainConfig, surveys: list[str]) -> dict:
    """The network's constructor arguments; a survey-conditioned one also takes the surveys."""
    kwargs = config.arch_kwargs
    if config.arch == "resnet34-stem-film":
        kwargs["surveys"] = list(surveys)
    return kwargs


def _model_id(surveys: list[str], config: TrainConfig, stamp_ids: list[str]) -> str:
    h = hashlib.sha256(json.dumps([surveys, config.as_dict(), sorted(stamp_ids)]).encode()).hexdigest()
    return f"{config.arch}-{h[:10]}"


#: Fine-tuning may start an architecture (key) from a model of another (value): its weights are
#: the wrapped network's, and the new parts start as the identity.
_STARTS_FROM = {"resnet34-stem-film": "resnet34-stem"}


def _initial_weights(catalog: Catalog, config: TrainConfig, device: torch.device) -> dict:
    """The weights to start from: ``config.init_from``'s, or the average of its models' weights.

    Each model is checked to fit ``config``'s network and geometry.
    """
    states = []
    for model_id in config.starting_models:
        row = catalog.sql("select kind, checkpoint from models where model_id = ?", [model_id]).fetchone()
        if row is None or row[0] != MODEL_KIND:
            raise BinarycatError(f"No stamp classifier {model_id!r} in the catalogue to start from.")
        model, old = load_catalog_checkpoint(catalog, row[1], device)
        mine = {"arch": config.arch, "input_size": config.input_size, "input_scale_arcsec": config.input_scale_arcsec}
        theirs = {k: old.get(k) for k in mine}
        if theirs["arch"] == _STARTS_FROM.get(config.arch):
            theirs["arch"] = config.arch
        if theirs != mine:
            differ = ", ".join(f"{k} {theirs[k]} (not {mine[k]})" for k in mine if theirs[k] != mine[k])
            raise BinarycatError(f"Model {model_id} has {differ}; fine-tuning needs the same --arch, "
                                 "--input-size and --field.")
        states.append(model.state_dict())
    return states[0] if len(states) == 1 else average_weights(states, config.starting_models)


def _load_initial(model: torch.nn.Module, state: dict, init_from: list[str]) -> None:
    """Load the starting weights, into the wrapped network when ``model`` wraps that one."""
    target = model.net if conditioning_surveys(model) is not None and not any(k.startswith("net.") for k in state) \
        else model
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        raise BinarycatError(f"Model {', '.join(init_from)}'s weights do not fit this network "
                             f"({str(exc).splitlines()[0]}); fine-tune on the same surveys.") from None


def _inherited_splits(catalog: Catalog, model_ids: list[str], data, seed: int) -> dict[str, str]:
    """Splits of a fine-tuning run: the starting models' sources keep theirs, new ones get a fresh split.

    Models averaged into one start must agree: a source one of them was tested on and another
    trained on would be a test stamp the average has seen.
    """
    old: dict[str, str] = {}
    owner: dict[str, str] = {}
    for model_id in model_ids:
        for source, split in catalog.sql("select source_id, split from splits where model_id = ?",
                                         [model_id]).fetchall():
            if old.setdefault(source, split) != split:
                raise BinarycatError(f"Source {source} is in the {old[source]} split of {owner[source]} but the "
                                     f"{split} split of {model_id}; models averaged by --init-from must share "
                                     "their splits.")
            owner.setdefault(source, model_id)
    new = [(s, y) for s, y in zip(data.source_id, data.label) if s not in old]
    fresh = split_sources([s for s, _ in new], [y for _, y in new], seed) if new else {}
    return {**{s: old[s] for s in data.source_id if s in old}, **fresh}


def predict_logits(model, x: torch.Tensor, device: torch.device, batch_size: int = 256,
                   views: int = 1, survey: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of ``x`` in batches, in inference mode, averaged over ``views`` symmetric views.

    See `binarycat.model.symmetry` for the views. ``survey``: each stamp's survey index, for a
    survey-conditioned network (`binarycat.model.networks.stamp_logits`).
    """
    out = []
    model.eval()
    layout = (lambda v: v.contiguous(memory_format=torch.channels_last)) if device.type == "cuda" else None
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            sb = survey[i : i + batch_size] if survey is not None else None
            with autocast(device):
                out.append(view_averaged_logits(partial(stamp_logits, model, survey=sb), xb, views,
                                                layout).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 2)


def precise_batchnorm(model, x: torch.Tensor, device: torch.device, *, n_max: int = 1024,
                      batch_size: int = 64, generator: torch.Generator | None = None,
                      survey: torch.Tensor | None = None) -> None:
    """Recompute every BatchNorm layer's running statistics with the current weights.

    The running averages BatchNorm keeps during training mix activations of many past steps;
    early in training, or on a small set, the weights move faster than the averages and the
    network in evaluation mode predicts one class for everything while it is right in training
    mode. Averaging the batch statistics of up to ``n_max`` training stamps with the final
    weights ("precise BN", Wu & Johnson 2021) removes that lag; it costs one forward pass.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or len(x) == 0:
        return
    idx = torch.randperm(len(x), generator=generator)[:n_max]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for i in range(0, len(idx), batch_size):
            xb = x[idx[i : i + batch_size]].to(device)
            if device.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                stamp_logits(model, xb, survey[idx[i : i + batch_size]] if survey is not None else None)
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    model.eval()


def _settled_average(averaged: AveragedModel, x: torch.Tensor, device: torch.device, seed: int,
                     survey: torch.Tensor | None = None):
    """A copy of the averaged network with BatchNorm statistics of its own weights.

    The statistics of any one epoch's weights do not fit their average, so they are
    recomputed (`precise_batchnorm`), on a copy, so the running average stays untouched.
    """
    model = copy.deepcopy(averaged.module)
    precise_batchnorm(model, x, device, generator=torch.Generator().manual_seed(seed), survey=survey)
    return model


def _averaged_epochs(config: TrainConfig, history: list[dict]) -> list[int] | None:
    """[first, last] epoch of the weight average, or None when no epoch was averaged."""
    done = [h["epoch"] for h in history if "val_macro_f1_average" in h]
    return [done[0], done[-1]] if done else None


class _WithMargins(torch.utils.data.Dataset):
    """A training dataset whose items also carry each stamp's two margins (NaN: unknown)."""

    def __init__(self, stamps: StampDataset, margins: torch.Tensor):
        self.stamps, self.margins = stamps, margins

    def __len__(self) -> int:
        return len(self.stamps)

    def __getitem__(self, i):
        return (*self.stamps[i], self.margins[i])


def _classifier_layer(model: torch.nn.Module) -> torch.nn.Linear:
    """The final linear layer of a stamp ResNet, plain or survey-conditioned."""
    return model.net.fc if conditioning_surveys(model) is not None else model.fc


def evaluate_split(model, dataset: StampDataset, device, threshold: float = 0.5, temperature: float = 1.0):
    """(p_binary, predicted labels) for a dataset."""
    p = probabilities(predict_logits(model, dataset.x, device, survey=dataset.survey), temperature)
    return p, (p >= threshold).astype(np.int64)


def train_stamp_classifier(
    catalog: Catalog,
    surveys: list[str],
    config: TrainConfig | None = None,
    *,
    where: str | None = None,
    device: str | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    on_wait: Callable[[str], object] | None = None,
) -> TrainResult:
    """Train a ResNet34 from scratch on the labelled stamps of ``surveys``.

    Sources (not stamps) are split 70/15/15 into train/validation/test, stratified by whether
    the source is a binary in any survey, so one star never sits in two splits. The best
    epoch by validation macro-F1 is kept, its temperature and then its per-survey decision
    thresholds are fitted on the validation split (`binarycat.model.calibration`,
    `binarycat.model.thresholds`), and it is evaluated on the test split, saved under
    ``models/<model_id>.pt`` and recorded in ``models`` (with its split in ``splits``).

    Parameters
    ----------
    catalog : Catalog
    surveys : list of str
        Canonical survey names to train on.
    config : TrainConfig, optional
    where : str, optional
        SQL condition on ``sources`` (alias ``s``) choosing the sources to train on, e.g.
        ``"s.dec > -6"``; the others stay unseen by this model (see ``binarycat evaluate --on unseen``).
    device : str, optional
        ``"cpu"`` or ``"cuda"``; default CUDA when present.
    progress : callable, optional
        ``progress(epoch, epochs, info)`` after every epoch, ``info`` holding loss and val F1.
    on_wait : callable, optional
        Called with a sentence if, when training ends, another process holds the catalogue's
        database file: it is released while the network trains (`Catalog.released`).
    """
    config = config or TrainConfig()
    t0 = time.perf_counter()
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    if config.views not in VIEW_COUNTS:
        raise BinarycatError(f"views must be 1 or 8, not {config.views}.")
    check_normalisation(config.normalisation)
    if config.thresholds not in THRESHOLD_CHOICES:
        raise BinarycatError(f"thresholds must be one of {', '.join(THRESHOLD_CHOICES)}, not {config.thresholds!r}.")
    if config.epochs < 0 or (config.epochs == 0 and not config.init_from):
        raise BinarycatError("epochs must be at least 1; 0 keeps the starting weights, so it needs init_from.")
    initial = _initial_weights(catalog, config, dev) if config.init_from else None
    data = labelled_stamps(catalog, surveys, where=where)
    if config.init_from:
        split_of = _inherited_splits(catalog, config.starting_models, data, config.split_seed)
    else:
        split_of = split_sources(data.source_id, data.label, config.split_seed)
    split = np.array([split_of[s] for s in data.source_id])
    parts = {name: data.subset(split == name) for name in ("train", "validation", "test")}
    for name, part in parts.items():
        if len(part) == 0:
            raise BinarycatError(f"Too few labelled stamps: the {name} split is empty.")
    if len(set(parts["train"].label.tolist())) < 2:
        raise BinarycatError("The training split holds only one class; label some of each class.")

    margins = None
    if config.aux_truth:
        pair_geometry = read_pair_geometry(config.aux_truth)
        margins = margin_targets(parts["train"].source_id, parts["train"].survey, pair_geometry)
        if bool(torch.isnan(margins).all()):
            raise BinarycatError("No training stamp is a binary of the --aux-truth tables; check their "
                                 "source ids and surveys.")
    geometry = dict(input_scale_arcsec=config.input_scale_arcsec, surveys=surveys,
                    normalisation=config.normalisation)
    train_ds = StampDataset(catalog, parts["train"], config.input_size, augment=True, seed=config.seed,
                            noise_fraction=config.noise_augment, **geometry)
    val_ds = StampDataset(catalog, parts["validation"], config.input_size, **geometry)
    test_ds = StampDataset(catalog, parts["test"], config.input_size, **geometry)
    schema_version = catalog.schema_version
    # Everything below until the model is stored works on the stamps in memory; releasing the
    # database file lets `binarycat query`, an ingest or a report run beside an hours-long run.
    with catalog.released(on_wait=on_wait):
        loader = DataLoader(train_ds if margins is None else _WithMargins(train_ds, margins),
                            batch_size=config.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.seed), drop_last=False)

        arch_kwargs = _arch_kwargs(config, surveys)
        model = build(config.arch, **arch_kwargs)
        if initial is not None:
            _load_initial(model, initial, config.starting_models)
        model = model.to(dev)
        if dev.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        counts = np.bincount(parts["train"].label, minlength=2).astype(float)
        weights = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=dev)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
        head = None
        if margins is not None:
            head = PairMarginHead(_classifier_layer(model)).to(dev)
        opt = adam(list(model.parameters()) + (list(head.parameters()) if head else []), config.learning_rate)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)

        def batch_loss(batch):
            xb, yb, sb = batch[:3]
            xb, yb = xb.to(dev), yb.to(dev)
            if dev.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(dev):
                loss = loss_fn(stamp_logits(model, xb, sb).float(), yb)
                if head is not None:
                    loss = loss + config.aux_weight * margin_loss(head.margins(), batch[3].to(dev))
                return loss, len(yb)

        best_f1, best_state, best_epoch, history = -1.0, None, 0, []
        averaged, average_f1 = None, None
        stopped = "epochs"
        if config.epochs == 0:  # the starting weights as they are, with BatchNorm statistics of their own
            precise_batchnorm(model, train_ds.x, dev, generator=torch.Generator().manual_seed(config.seed),
                              survey=train_ds.survey)
            _, val_pred = evaluate_split(model, val_ds, dev, config.threshold)
            best_f1 = classification_report(parts["validation"].label, val_pred)["macro avg"]["f1"]
            best_state = copy.deepcopy(model.state_dict())
        for epoch in range(1, config.epochs + 1):
            mean_loss = train_epoch(model, loader, opt, batch_loss)
            sched.step()
            precise_batchnorm(model, train_ds.x, dev, generator=torch.Generator().manual_seed(config.seed + epoch),
                              survey=train_ds.survey)
            _, val_pred = evaluate_split(model, val_ds, dev, config.threshold)
            val_f1 = classification_report(parts["validation"].label, val_pred)["macro avg"]["f1"]
            info = {"epoch": epoch, "loss": mean_loss, "val_macro_f1": val_f1}
            if config.average_from is not None and epoch >= config.average_from:
                if averaged is None:
                    averaged = AveragedModel(model)
                averaged.update_parameters(model)
                average = _settled_average(averaged, train_ds.x, dev, config.seed + epoch, train_ds.survey)
                _, average_pred = evaluate_split(average, val_ds, dev, config.threshold)
                average_f1 = classification_report(parts["validation"].label, average_pred)["macro avg"]["f1"]
                info["val_macro_f1_average"] = average_f1
            history.append(info)
            if val_f1 > best_f1:
                best_f1, best_epoch = val_f1, epoch
                best_state = copy.deepcopy(model.state_dict())
            if progress:
                progress(epoch, config.epochs, info)
            if epoch - best_epoch >= config.patience:
                stopped = "patience"
                break
            if config.max_minutes is not None and time.perf_counter() - t0 >= 60 * config.max_minutes:
                stopped = "max_minutes"
                break
        if head is not None:
            head.detach()
        if averaged is not None:
            model = average
        else:
            model.load_state_dict(best_state)

        val_logits = predict_logits(model, val_ds.x, dev, views=config.views, survey=val_ds.survey)
        temperature = fit_temperature(val_logits, parts["validation"].label)
        test_logits = predict_logits(model, test_ds.x, dev, views=config.views, survey=test_ds.survey)
        calibration = {
            "temperature": temperature,
            "ece_validation_before": expected_calibration_error(probabilities(val_logits), parts["validation"].label),
            "ece_validation_after": expected_calibration_error(probabilities(val_logits, temperature),
                                                               parts["validation"].label),
            "ece_test_before": expected_calibration_error(probabilities(test_logits), parts["test"].label),
            "ece_test_after": expected_calibration_error(probabilities(test_logits, temperature), parts["test"].label),
        }
        p_val = probabilities(val_logits, temperature)
        thresholds = fit_survey_thresholds(p_val, parts["validation"].label, parts["validation"].survey,
                                           prefer=config.threshold) if config.thresholds == "validation" else None
        p_test = probabilities(test_logits, temperature)
        y_test = parts["test"].label
        surveys_test = np.array(parts["test"].survey)
        at = stamp_thresholds(threshold_table(thresholds), surveys_test, config.threshold)
        report, per_survey = survey_reports(y_test, (p_test >= at).astype(np.int64), surveys_test, surveys)
        report_fixed, per_survey_fixed = survey_reports(y_test, (p_test >= config.threshold).astype(np.int64),
                                                        surveys_test, surveys)

    model_id = _model_id(surveys, config, data.stamp_id)
    checkpoint = f"models/{model_id}.pt"
    model_config = {
        **config.as_dict(), "input_scale_arcsec": config.input_scale_arcsec, "arch_kwargs": arch_kwargs,
        "normalisation": config.normalisation,
        "geometry": GEOMETRY if config.input_scale_arcsec else "square-resample-v1",
        "surveys": surveys, "best_epoch": best_epoch, "temperature": temperature,
        "schema_version": schema_version, "where": where,
    }
    save_checkpoint(catalog.resolve(checkpoint), model, model_config)
    metrics = {
        "test": report, "test_per_survey": per_survey, "thresholds": thresholds,
        "test_fixed_threshold": report_fixed, "test_per_survey_fixed_threshold": per_survey_fixed,
        "best_val_macro_f1": best_f1,
        "best_epoch": best_epoch, "history": history, "stopped": stopped, "calibration": calibration,
        "averaged_epochs": _averaged_epochs(config, history), "val_macro_f1_average": average_f1,
        "n_train": len(parts["train"]), "n_validation": len(parts["validation"]), "n_test": len(y_test),
    }
    with catalog.transaction() as con:
        con.execute("delete from splits where model_id = ?", [model_id])
        con.execute(
            "insert or replace into models (model_id, kind, surveys, params, split_seed, metrics, checkpoint) "
            "values (?, ?, ?, ?, ?, ?, ?)",
            [model_id, MODEL_KIND, surveys, json.dumps(model_config), config.split_seed,
             json.dumps(metrics), checkpoint],
        )
        con.executemany(
            "insert into splits (model_id, source_id, split) values (?, ?, ?)",
            [(model_id, s, v) for s, v in sorted(split_of.items())],
        )
    return TrainResult(
        model_id=model_id, report=report, per_survey=per_survey, history=history,
        n_train=len(parts["train"]), n_validation=len(parts["validation"]), n_test=len(y_test),
        seconds=time.perf_counter() - t0, checkpoint=checkpoint, calibration=calibration,
        thresholds=threshold_table(thresholds),
    )
