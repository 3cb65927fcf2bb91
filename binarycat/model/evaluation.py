"""Evaluating a stamp classifier: the paper's Table 2, per survey, calibration and a classical baseline.

`evaluate_model` scores a trained model on one of two stamp sets of its surveys:

- ``"test"``: the held-out test split of its own training run (sources it never trained or
  validated on, drawn from the same pool);
- ``"unseen"``: every labelled stamp whose source is in none of its splits, for instance a sky
  simulated with another seed and ingested later (``binarycat simulate --first-id``), or
  stamps labelled after training.

For that set it computes the classification report of the CNN, overall and per survey, on the
calibrated ``p_binary`` averaged over the model's symmetric views (`binarycat.model.symmetry`):
once with the model's per-survey decision thresholds (`binarycat.model.thresholds`, fitted on
its validation stamps; fitted here and stored the first time for a model trained without
them) and once at the fixed threshold 0.5; the expected calibration error before and after
the model's temperature; and the same report for the classical baseline of
`binarycat.model.baseline` (a one- versus two-component PSF fit whose per-survey thresholds are
fitted on the model's own train and validation stamps, never on the evaluated ones). It saves a
confusion-matrix figure and stores everything in the model's ``models.metrics`` under
``evaluation.<set>``. ``Evaluation.per_stamp`` keeps what was decided for each stamp (see
`stamp_table`), for finding the stamps a model gets wrong; it is returned, not stored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from binarycat.catalog.arrays import load_stamp_arrays
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.model.baseline import BASELINE_NAME, PairBaseline, baseline_name, pair_scores
from binarycat.model.calibration import expected_calibration_error, probabilities
from binarycat.model.checkpoints import load_catalog_checkpoint
from binarycat.model.data import LabelledStamps, labelled_stamps
from binarycat.model.device import pick_device
from binarycat.model.metrics import macro_f1_difference_interval, paired_disagreement, survey_reports
from binarycat.model.networks import conditioning_surveys, survey_indices
from binarycat.model.predict import model_row
from binarycat.model.preprocess import NORMALISATION, stamps_to_tensor
from binarycat.model.symmetry import views_of
from binarycat.model.thresholds import FIXED_THRESHOLD, fit_survey_thresholds, stamp_thresholds, threshold_table
from binarycat.model.train import predict_logits

__all__ = ["EVALUATION_SETS", "Evaluation", "evaluate_model", "compare_with_baseline", "fitted_thresholds",
           "model_stamps", "save_confusion_figure", "stamp_table"]

EVALUATION_SETS = ("test", "unseen")


@dataclass
class Evaluation:
    """What `evaluate_model` measured (``report`` and ``baseline`` are `classification_report` dicts).

    ``report`` and ``per_survey`` use the model's per-survey ``thresholds`` (empty: ``threshold``
    for every survey); ``report_fixed`` and ``per_survey_fixed`` the fixed ``threshold``.
    ``comparison`` maps ``"all"`` and each survey to the CNN's macro-F1 minus the baseline's,
    ``{"difference", "low", "high"}``, with a paired bootstrap 95 % interval, and the stamps
    only one of the two gets right with McNemar's p-value (see `compare_with_baseline`); ``baseline_name`` says which baseline ("" without one). ``per_stamp`` is `stamp_table` of the scored stamps; it is left
    out of `as_dict` (and so of the stored report).
    """

    model_id: str
    on: str
    n_stamps: int
    report: dict
    per_survey: dict
    baseline: dict
    baseline_per_survey: dict
    calibration: dict
    threshold: float
    figure: str = ""
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    views: int = 1
    thresholds: dict = field(default_factory=dict)
    report_fixed: dict = field(default_factory=dict)
    per_survey_fixed: dict = field(default_factory=dict)
    comparison: dict = field(default_factory=dict)
    per_stamp: pa.Table | None = field(default=None, repr=False)
    baseline_name: str = BASELINE_NAME

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "per_stamp"}


def stamp_table(stamps: LabelledStamps, p_binary, thresholds, predicted, baseline_score=None,
                baseline_predicted=None) -> pa.Table:
    """One row per scored stamp: what the CNN and the baseline decided, beside the label.

    Columns: ``stamp_id``, ``source_id``, ``survey``, ``label``, ``p_binary`` (calibrated, mean
    over the model's views), ``threshold`` (the one applied to that stamp), ``predicted``,
    ``correct``, and ``baseline_score``, ``baseline_predicted`` (null without a baseline).
    """
    n = len(stamps)
    label = np.asarray(stamps.label, dtype=np.int8)
    predicted = np.asarray(predicted, dtype=np.int8)

    def optional(values, dtype):
        return pa.nulls(n, dtype) if values is None else pa.array(np.asarray(values), dtype)

    return pa.table({
        "stamp_id": pa.array(stamps.stamp_id, pa.string()),
        "source_id": pa.array(stamps.source_id, pa.string()),
        "survey": pa.array(stamps.survey, pa.string()),
        "label": pa.array(label, pa.int8()),
        "p_binary": pa.array(np.asarray(p_binary, dtype=np.float64)),
        "threshold": pa.array(np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n,))),
        "predicted": pa.array(predicted, pa.int8()),
        "correct": pa.array(predicted == label),
        "baseline_score": optional(baseline_score, pa.float64()),
        "baseline_predicted": optional(baseline_predicted, pa.int8()),
    })


def _splits(catalog: Catalog, model_id: str) -> dict[str, str]:
    rows = catalog.sql("select source_id, split from splits where model_id = ?", [model_id]).fetchall()
    return dict(rows)


def model_stamps(catalog: Catalog, model_id: str, surveys: list[str], on: str,
                 where: str | None = None) -> LabelledStamps:
    """The labelled stamps of ``surveys`` in split ``on`` of a model (``"unseen"``: in no split).

    ``on`` may also be ``"train"`` or ``"validation"``; ``where`` is an SQL condition on
    ``sources`` (alias ``s``) that narrows the set further.
    """
    split_of = _splits(catalog, model_id)
    data = labelled_stamps(catalog, surveys, where=where)
    if on == "unseen":
        mask = np.array([s not in split_of for s in data.source_id], dtype=bool)
    else:
        mask = np.array([split_of.get(s) == on for s in data.source_id], dtype=bool)
    if not mask.any():
        hint = (" Simulate or label stamps of sources it never saw first (e.g. `binarycat simulate "
                "--first-id`)." if on == "unseen" else "")
        raise BinarycatError(f"Model {model_id} has no labelled {on} stamps in {', '.join(surveys)}.{hint}")
    return data.subset(mask)


def _stamp_optics(catalog: Catalog, stamps: LabelledStamps) -> tuple[list[float], list[float]]:
    """Pixel scale and PSF FWHM (arcsec) of each stamp, for the baseline."""
    optics = dict((n, (f, p)) for n, f, p in catalog.sql(
        "select name, fwhm_arcsec, pixel_scale_arcsec from surveys where name in (select unnest(?))",
        [sorted(set(stamps.survey))]).fetchall())
    missing = sorted(set(stamps.survey) - set(optics))
    if missing:
        raise BinarycatError(f"The catalogue's surveys table has no FWHM for {', '.join(missing)}.")
    scales = [p or optics[s][1] for p, s in zip(stamps.pixel_scale, stamps.survey)]
    return scales, [optics[s][0] for s in stamps.survey]


def _baseline_key(profile: str) -> str:
    """Where a model's ``metrics`` keep the thresholds of the baseline fitting ``profile``."""
    return "baseline" if profile == "gaussian" else f"baseline-{profile}"


class _BaselineJob:
    """What the baseline needs, read from the catalogue, so it can run with the file released.

    The per-survey thresholds are fitted once per model and PSF family on the model's train and
    validation stamps (kept in ``models.metrics`` under ``baseline`` (Gaussian) or
    ``baseline-<profile>``); when they are not stored yet, those stamps are read here too.
    """

    def __init__(self, catalog: Catalog, row: dict, surveys: list[str], stamps: LabelledStamps,
                 arrays: list, profile: str):
        self.profile, self.name, self.key = profile, baseline_name(profile), _baseline_key(profile)
        self.stamps, self.arrays = stamps, arrays
        self.optics = _stamp_optics(catalog, stamps)
        stored = (row["metrics"] or {}).get(self.key)
        self.fitted = PairBaseline.from_dict(stored) if stored and stored.get("name") == self.name else None
        self.new = self.fitted is None
        self.seen = None
        if self.new:
            split_of = _splits(catalog, row["model_id"])
            data = labelled_stamps(catalog, surveys)
            seen = data.subset(np.array([split_of.get(s) in ("train", "validation") for s in data.source_id], bool))
            self.seen = (seen, load_stamp_arrays(catalog, seen.stamp_id), _stamp_optics(catalog, seen))

    def run(self, progress) -> tuple[PairBaseline, np.ndarray]:
        """Fit the thresholds if needed, then score the evaluated stamps (needs no catalogue)."""
        if self.fitted is None:
            seen, arrays, (scales, fwhms) = self.seen
            progress(f"Fitting the {self.name} baseline's thresholds on the model's {len(seen):,} train and "
                     f"validation stamps (once per model).")
            self.fitted = PairBaseline.fit(pair_scores(arrays, scales, fwhms, self.profile), seen.label,
                                           seen.survey, self.name)
            self.seen = None
        progress(f"Scoring {len(self.stamps):,} stamps with the {self.name} baseline.")
        return self.fitted, pair_scores(self.arrays, *self.optics, self.profile)


def _store_metric(catalog: Catalog, row: dict, key: str, value) -> None:
    metrics = dict(row["metrics"] or {})
    metrics[key] = value
    with catalog.transaction() as con:
        con.execute("update models set metrics = ? where model_id = ?", [json.dumps(metrics), row["model_id"]])
    row["metrics"] = metrics


def _view_logits(model, config: dict, stamps: LabelledStamps, arrays: list, dev, batch_size: int) -> np.ndarray:
    x = stamps_to_tensor(arrays, config["input_size"], stamps.pixel_scale, config.get("input_scale_arcsec"),
                         normalisation=config.get("normalisation", NORMALISATION))
    survey = survey_indices(conditioning_surveys(model), stamps.survey)
    return predict_logits(model, x, dev, batch_size, views=views_of(config), survey=survey).numpy()


def fitted_thresholds(catalog: Catalog, row: dict, model, config: dict, dev, batch_size: int = 256) -> dict | None:
    """The model's per-survey decision thresholds (`binarycat.model.thresholds`), or None.

    Stored by training in ``models.metrics["thresholds"]`` (None: trained with
    ``thresholds="fixed"``); for a model trained before thresholds were fitted, they are fitted
    here on its validation stamps, with its views and temperature, and stored once.
    """
    metrics = row["metrics"] or {}
    if "thresholds" in metrics:
        return metrics["thresholds"]
    stamps = model_stamps(catalog, row["model_id"], list(row["surveys"]), "validation")
    p = probabilities(_view_logits(model, config, stamps, load_stamp_arrays(catalog, stamps.stamp_id), dev, batch_size),
                      float(config.get("temperature", 1.0)))
    fitted = fit_survey_thresholds(p, stamps.label, stamps.survey,
                                   prefer=float(config.get("threshold", FIXED_THRESHOLD)))
    _store_metric(catalog, row, "thresholds", fitted)
    return fitted


def compare_with_baseline(y, cnn, baseline, surveys: np.ndarray, names: list[str]) -> dict:
    """CNN macro-F1 minus the baseline's, overall and per survey, with paired bootstrap 95 % intervals.

    A survey's interval resamples its stamps (one per source); the overall one resamples all
    stamps as if independent, although a source's stamps in several surveys are not, so it is
    somewhat too narrow. Each entry also counts the stamps only the CNN gets right
    (``cnn_only``) and only the baseline gets right (``baseline_only``), with McNemar's exact
    p-value that the two are equally good (`paired_disagreement`).
    """
    out = {}
    for name in ["all", *names]:
        sel = np.ones(len(y), bool) if name == "all" else surveys == name
        if sel.any():
            y_sel, cnn_sel, base_sel = np.asarray(y)[sel], np.asarray(cnn)[sel], np.asarray(baseline)[sel]
            d, low, high = macro_f1_difference_interval(y_sel, cnn_sel, base_sel)
            split = paired_disagreement(y_sel, cnn_sel, base_sel)
            out[name] = {"difference": d, "low": low, "high": high, "cnn_only": split["only_a"],
                         "baseline_only": split["only_b"], "mcnemar_p": split["p_value"]}
    return out


def save_confusion_figure(path: Path, reports: dict[str, dict], title: str) -> Path:
    """One confusion-matrix panel per entry of ``reports`` (name -> classification report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(reports)
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n, 3.4), squeeze=False)
    for ax, (name, rep) in zip(axes[0], reports.items()):
        m = np.asarray(rep["confusion_matrix"])
        frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{m[i, j]}\n{frac[i, j]:.1%}", ha="center", va="center",
                        color="white" if frac[i, j] > 0.5 else "black", fontsize=9)
        ax.set_xticks([0, 1], ["single", "binary"])
        ax.set_yticks([0, 1], ["single", "binary"])
        ax.set_xlabel("predicted")
        if ax is axes[0][0]:
            ax.set_ylabel("true")
        ax.set_title(f"{name}\nF1 {rep['macro avg']['f1']:.3f} (n={rep['macro avg']['support']})", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluate_model(catalog: Catalog, model_id: str | None = None, *, on: str = "test",
                   where: str | None = None, device: str | None = None, baseline: bool = True,
                   figure: Path | None = None, batch_size: int = 256,
                   baseline_psf: str = "gaussian", progress: Callable[[str], object] | None = None) -> Evaluation:
    """Score a stamp classifier and the classical baseline on one stamp set, and store the result.

    Parameters
    ----------
    catalog : Catalog
        Opened writable: the result goes into the model's ``models.metrics``.
    model_id : str, optional
        Default: the newest stamp classifier.
    on : {"test", "unseen"}
        Which stamps (see the module docstring).
    where : str, optional
        SQL condition on ``sources`` (alias ``s``) narrowing the set, e.g. one simulated sky's ids.
    device : str, optional
    baseline : bool
        Also run the classical baseline (its thresholds are fitted the first time and kept).
    baseline_psf : {"gaussian", "moffat"}
        The PSF family the baseline fits (`binarycat.model.baseline`). A Moffat baseline's
        result is stored beside the Gaussian one, under the set's name plus ``[moffat]``.
    figure : Path, optional
        Where to save the confusion-matrix PNG; default ``models/<model_id>.<on>.confusion.png``
        in the catalogue.
    progress : callable, optional
        Called with a sentence before each long step (and when reopening the catalogue has to
        wait for another process).

    Notes
    -----
    Once the stamps are read, the catalogue file is released (`Catalog.released`) while the
    CNN and the baseline score them, so other processes can query or ingest meanwhile; it is
    opened again to store the result.

    Raises
    ------
    BinarycatError
        Unknown model or set, no stamps in the set, or a checkpoint that cannot be used here.
    """
    if on not in EVALUATION_SETS:
        raise BinarycatError(f"Unknown evaluation set {on!r}; choose one of {', '.join(EVALUATION_SETS)}.")
    t0 = time.perf_counter()
    name = baseline_name(baseline_psf)
    progress = progress or (lambda _: None)
    row = model_row(catalog, model_id)
    model_id, surveys = row["model_id"], list(row["surveys"])
    dev = pick_device(device)
    model, config = load_catalog_checkpoint(catalog, row["checkpoint"], dev)
    stamps = model_stamps(catalog, model_id, surveys, on, where)
    timings = {}
    t = time.perf_counter()
    thresholds = fitted_thresholds(catalog, row, model, config, dev, batch_size)
    arrays = load_stamp_arrays(catalog, stamps.stamp_id)
    job = _BaselineJob(catalog, row, surveys, stamps, arrays, baseline_psf) if baseline else None
    timings["read"] = time.perf_counter() - t

    fitted = base_scores = None
    with catalog.released(on_wait=progress):  # all in memory: other processes may use the file meanwhile
        progress(f"Scoring {len(stamps):,} stamps with {model_id}.")
        t = time.perf_counter()
        logits = _view_logits(model, config, stamps, arrays, dev, batch_size)
        timings["cnn"] = time.perf_counter() - t
        if job is not None:
            t = time.perf_counter()
            fitted, base_scores = job.run(progress)
            timings["baseline"] = time.perf_counter() - t
    if job is not None and job.new:
        _store_metric(catalog, row, job.key, {"name": name, **fitted.as_dict()})
    temperature = float(config.get("temperature", 1.0))
    threshold = float(config.get("threshold", FIXED_THRESHOLD))
    p = probabilities(logits, temperature)
    y = stamps.label
    survey_arr = np.asarray(stamps.survey)
    cut = stamp_thresholds(threshold_table(thresholds), survey_arr, threshold)
    pred = (p >= cut).astype(np.int64)
    report, per_survey = survey_reports(y, pred, survey_arr, surveys)
    report_fixed, per_survey_fixed = survey_reports(y, (p >= threshold).astype(np.int64), survey_arr, surveys)
    calibration = {
        "temperature": temperature,
        "ece_before": expected_calibration_error(probabilities(logits), y),
        "ece_after": expected_calibration_error(p, y),
    }

    base_report, base_per_survey, comparison = {}, {}, {}
    base_pred = None
    if job is not None:
        base_pred = fitted.predict(base_scores, stamps.survey)
        base_report, base_per_survey = survey_reports(y, base_pred, survey_arr, surveys)
        comparison = compare_with_baseline(y, pred, base_pred, survey_arr, surveys)

    figure = Path(figure) if figure else catalog.resolve(f"models/{model_id}.{on}.confusion.png")
    panels = {"all surveys": report, **per_survey}
    if base_report:
        panels["baseline, all"] = base_report
    save_confusion_figure(figure, panels, f"{model_id}: {on} stamps (CNN; last panel: {name})")

    label = (on if not where else f"{on} where {where}") + ("" if baseline_psf == "gaussian" else f" [{baseline_psf}]")
    result = Evaluation(model_id, label, len(y), report, per_survey,
                        base_report, base_per_survey, calibration, threshold, str(figure), time.perf_counter() - t0, timings, views_of(config),
                        threshold_table(thresholds), report_fixed, per_survey_fixed, comparison,
                        stamp_table(stamps, p, cut, pred, base_scores, base_pred),
                        name if baseline else "")
    evaluations = dict((row["metrics"] or {}).get("evaluation") or {})
    evaluations[result.on] = {k: v for k, v in result.as_dict().items() if k != "model_id"}
    _store_metric(catalog, row, "evaluation", evaluations)
    return result
