"""Eclipsing-binary workflows: stored light curves -> CALNet inputs -> training, prediction.

Like `binarycat.pipeline`, this module sits between ``cli`` and the packages: it is the one
place that joins the light-curve preprocessing (``ingest``) with the periodogram kernel and
the network (``model``), which do not import each other.

Examples
--------
>>> from binarycat.catalog.store import Catalog                        # doctest: +SKIP
>>> from binarycat.eb_pipeline import train_eb, predict_eb             # doctest: +SKIP
>>> cat = Catalog("my-catalog")                                        # doctest: +SKIP
>>> result = train_eb(cat)                                             # doctest: +SKIP
>>> predict_eb(cat).n_eclipsing                                        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from binarycat.catalog.feature_store import load_features, store_features
from binarycat.catalog.lightcurve_store import load_lightcurves
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.ingest.lightcurve_prep import PREPROCESSING_VERSION, describe, preprocess_lightcurve
from binarycat.model.eb_data import N_SCALARS, EBFeatures, amplitude_scalars
from binarycat.model.eb_train import (EB_CLASS_NAMES, EBPredictResult, EBTrainConfig, EBTrainResult, load_eb_model,
                                      predict_eclipsing, train_eb_classifier)
from binarycat.model.metrics import classification_report
from binarycat.model.periodogram import CALNET_PERIODS, calnet_periodogram

__all__ = ["EBEvaluation", "FeatureFailures", "evaluate_eb", "lightcurve_features", "predict_eb", "train_eb",
           "validation_threshold"]

CHUNK = 128
PERIODOGRAM_VERSION = "gls-zk09-calnet-periods-minmax"
SCALARS_VERSION = "amplitude-v1"


@dataclass
class FeatureFailures:
    """Light curves that could not be prepared, with the reason (``(lightcurve_id, reason)``)."""

    items: list[tuple[str, str]] = field(default_factory=list)


def lightcurve_features(
    catalog: Catalog, lightcurve_ids: list[str] | None = None, *, labelled_only: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[EBFeatures, FeatureFailures]:
    """Preprocess stored light curves and compute their GLS periodograms.

    What was prepared before with the same recipe is read back from the feature store
    (`binarycat.catalog.feature_store`); what is new is prepared and kept there (unless the
    catalogue is open read-only).

    Parameters
    ----------
    lightcurve_ids : list of str, optional
        Which light curves; default all (or all with an eclipsing-binary label).
    labelled_only : bool
        Keep only light curves whose star has a label in ``latest_eb_labels``.

    Returns
    -------
    (EBFeatures, FeatureFailures)
        Features in catalogue order (``tic_id``, ``sector``), labels from ``latest_eb_labels``
        (-1 where none); curves too short to prepare are listed in the failures.
    """
    rows = catalog.sql(
        f"""select l.lightcurve_id, l.tic_id, coalesce(b.label, -1)
            from lightcurves l left join latest_eb_labels b using (tic_id)
            where {'b.label is not null' if labelled_only else 'true'}
              and (? or l.lightcurve_id in (select unnest(?)))
            order by l.tic_id, l.sector""",
        [lightcurve_ids is None, list(lightcurve_ids or [])],
    ).fetchall()
    recipe = _recipe()
    cached = load_features(catalog, recipe, [r[0] for r in rows])
    ids, tics, labels, lcs, pgs, scalars, periods = [], [], [], [], [], [], []
    failures = FeatureFailures()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        todo = [r for r in chunk if r[0] not in cached]
        fresh = {}
        for (lid, _, _), arrays in zip(todo, load_lightcurves(catalog, [r[0] for r in todo])):
            try:
                prep = preprocess_lightcurve(arrays.time, arrays.flux, arrays.quality, arrays.flux_err)
            except BinarycatError as exc:
                failures.items.append((lid, str(exc)))
                continue
            power = calnet_periodogram(prep.points_time, prep.points_flux, prep.points_flux_err)
            fresh[lid] = (prep.flux, power, amplitude_scalars(*prep.flux_range),
                          float(CALNET_PERIODS[int(np.argmax(power))]))
        if fresh and not catalog.read_only:
            keys = list(fresh)
            store_features(catalog, recipe, keys, np.stack([fresh[k][0] for k in keys]),
                           np.stack([fresh[k][1] for k in keys]), np.stack([fresh[k][2] for k in keys]),
                           [fresh[k][3] for k in keys])
        for lid, tic, label in chunk:
            got = cached.get(lid) or fresh.get(lid)
            if got is None:
                continue
            ids.append(lid)
            tics.append(tic)
            labels.append(label)
            lcs.append(got[0])
            pgs.append(got[1])
            scalars.append(got[2])
            periods.append(got[3])
        if progress:
            progress(min(start + CHUNK, len(rows)), len(rows))
    n_lc, n_pg = 4000, len(CALNET_PERIODS)
    features = EBFeatures(
        ids, np.asarray(tics, np.int64),
        np.stack(lcs) if lcs else np.zeros((0, n_lc), np.float32),
        np.stack(pgs) if pgs else np.zeros((0, n_pg), np.float32),
        np.asarray(periods), np.asarray(labels, np.int64),
        np.stack(scalars) if scalars else np.zeros((0, N_SCALARS), np.float32),
    )
    return features, failures


def _recipe() -> str:
    return f"{PREPROCESSING_VERSION}+{PERIODOGRAM_VERSION}+{SCALARS_VERSION}"


def _preprocessing() -> dict:
    return {"version": PREPROCESSING_VERSION, **describe(), "periodogram": PERIODOGRAM_VERSION,
            "scalars": SCALARS_VERSION}


def train_eb(
    catalog: Catalog, config: EBTrainConfig | None = None, *, device: str | None = None,
    features: EBFeatures | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    prepare_progress: Callable[[int, int], object] | None = None,
) -> tuple[EBTrainResult, FeatureFailures]:
    """Prepare every labelled light curve and train CALNet on them (see
    `binarycat.model.eb_train.train_eb_classifier`)."""
    failures = FeatureFailures()
    if features is None:
        features, failures = lightcurve_features(catalog, labelled_only=True, progress=prepare_progress)
    if len(features) == 0:
        raise BinarycatError(
            "No labelled light curves to train on; ingest light curves and import eclipsing-binary "
            "labels (a file with tic_id and label columns) first.")
    result = train_eb_classifier(catalog, features, config, preprocessing=_preprocessing(),
                                 device=device, progress=progress)
    return result, failures


def predict_eb(
    catalog: Catalog, model_id: str | None = None, *, lightcurve_ids: list[str] | None = None,
    threshold: float | None = None, device: str | None = None, features: EBFeatures | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[EBPredictResult, FeatureFailures]:
    """Predict every stored light curve (or the given ones, or the prepared ``features``) with a
    CALNet model and store the results in ``eb_predictions`` and the TESS rows of
    ``binary_flags``."""
    model, config, row, dev = load_eb_model(catalog, model_id, device)
    prep = config.get("preprocessing", {}).get("version")
    if prep and prep != PREPROCESSING_VERSION:
        raise BinarycatError(
            f"Model {row['model_id']} was trained on preprocessing {prep}, this binarycat makes "
            f"{PREPROCESSING_VERSION}; train a new model.")
    failures = FeatureFailures()
    if features is None:
        features, failures = lightcurve_features(catalog, lightcurve_ids, progress=progress)
    result = predict_eclipsing(catalog, features, model, config, row["model_id"], dev, threshold=threshold)
    return result, failures


@dataclass
class EBEvaluation:
    """A CALNet model measured on labelled light curves it never saw in training or validation.

    Attributes
    ----------
    model_id : str
    report : dict
        `binarycat.model.metrics.classification_report` at the model's threshold.
    threshold : float
    lightcurve_id, tic_id, p_binary, label : sequences
        What was measured, one per light curve.
    """

    model_id: str
    report: dict
    threshold: float
    lightcurve_id: list = field(default_factory=list)
    tic_id: np.ndarray = None
    p_binary: np.ndarray = None
    label: np.ndarray = None


def validation_threshold(catalog: Catalog, model_id: str, target_recall: float, *,
                         device: str | None = None) -> float:
    """The highest threshold (at most 0.5) at which ``model_id`` finds ``target_recall`` of the
    eclipsing binaries of its own validation split; a stricter recall than the one it was
    trained with, chosen without looking at any test star."""
    from binarycat.model.eb_train import _p_eb, choose_threshold

    model, _, row, dev = load_eb_model(catalog, model_id, device)
    ids = [lid for (lid,) in catalog.sql(
        """select l.lightcurve_id from lightcurves l join eb_splits s using (tic_id)
           where s.model_id = ? and s.split = 'validation' order by l.tic_id, l.sector""",
        [row["model_id"]]).fetchall()]
    features, _ = lightcurve_features(catalog, ids, labelled_only=True)
    return choose_threshold(_p_eb(model, features, dev), features.label, target_recall)


def evaluate_eb(
    catalog: Catalog, model_id: str | None = None, *, threshold: float | None = None,
    device: str | None = None, progress: Callable[[int, int], object] | None = None,
) -> EBEvaluation:
    """Predict and score every labelled light curve whose star was not in the model's train or
    validation split: its test split plus anything labelled since (a freshly simulated set,
    a new sector). Predictions are stored as by `predict_eb`; ``threshold`` replaces the
    model's own."""
    model, config, row, dev = load_eb_model(catalog, model_id, device)
    held_out = [lid for (lid,) in catalog.sql(
        """select l.lightcurve_id from lightcurves l join latest_eb_labels b using (tic_id)
           where l.tic_id not in (select tic_id from eb_splits where model_id = ? and split <> 'test')
           order by l.tic_id, l.sector""", [row["model_id"]]).fetchall()]
    if not held_out:
        raise BinarycatError(f"No labelled light curves outside the training data of {row['model_id']}.")
    features, _ = lightcurve_features(catalog, held_out, progress=progress)
    predict_eclipsing(catalog, features, model, config, row["model_id"], dev, threshold=threshold)
    p = np.array([v for (v,) in catalog.sql(
        "select p.p_binary from (select unnest(?) as lightcurve_id, generate_subscripts(?, 1) as i) f "
        "join eb_predictions p on p.lightcurve_id = f.lightcurve_id and p.model_id = ? order by f.i",
        [features.lightcurve_id, features.lightcurve_id, row["model_id"]]).fetchall()])
    threshold = float(config.get("threshold", 0.5) if threshold is None else threshold)
    report = classification_report(features.label, p >= threshold, EB_CLASS_NAMES)
    return EBEvaluation(row["model_id"], report, threshold, features.lightcurve_id, features.tic_id, p,
                        features.label)
