"""Per-survey decision thresholds of the stamp classifier, fitted on its validation split.

A stamp is flagged a binary when its calibrated ``p_binary`` reaches its survey's threshold.
Temperature scaling (`binarycat.model.calibration`) makes ``p_binary`` honest but cannot move
that decision: dividing two logits by one number never changes which is larger. The surveys
differ in depth, sampling and binary fraction, so one network's best operating point need not
sit at 0.5 in each of them; the classical baseline (`binarycat.model.baseline`) gets one
threshold per survey for the same reason.

The rule, ``"validation-macro-f1-v1"``: for each survey on its own, on that survey's
validation stamps only (never the test split or any evaluated set), the threshold is the
candidate that maximises macro-F1 of ``p_binary >= t``; the candidates are 0.5 and the
midpoints between consecutive distinct values of ``p_binary``, and among equally good
candidates the one nearest 0.5 wins. So a threshold leaves 0.5 only when the validation
stamps show a strict gain, and then moves no further than that gain needs.
"""

from __future__ import annotations

import numpy as np

from binarycat.errors import BinarycatError
from binarycat.model.metrics import macro_f1_at_thresholds

__all__ = ["FIXED_THRESHOLD", "THRESHOLD_RULE", "best_threshold", "fit_survey_thresholds", "stamp_thresholds",
           "threshold_table"]

THRESHOLD_RULE = "validation-macro-f1-v1"

#: The decision threshold without a fitted one, and the one the rule starts from.
FIXED_THRESHOLD = 0.5


def best_threshold(p_binary, labels, prefer: float = FIXED_THRESHOLD) -> float:
    """The threshold ``t`` maximising macro-F1 of ``p_binary >= t``; ties go to the one nearest ``prefer``.

    Parameters
    ----------
    p_binary : array_like of float, shape (N,)
    labels : array_like of int, shape (N,)
        0 (not binary) or 1 (binary).
    prefer : float
        Returned as is when no candidate beats it, including when there are no stamps.
    """
    p = np.asarray(p_binary, dtype=float).ravel()
    if len(p) == 0:
        return float(prefer)
    values = np.unique(p)
    candidates = np.concatenate([[prefer], (values[:-1] + values[1:]) / 2.0])
    f1 = macro_f1_at_thresholds(p, labels, candidates)
    best = np.flatnonzero(f1 >= f1.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - prefer))]])


def fit_survey_thresholds(p_binary, labels, surveys, prefer: float = FIXED_THRESHOLD) -> dict:
    """`best_threshold` of each survey's stamps on their own.

    Returns
    -------
    dict
        ``{"rule": THRESHOLD_RULE, "per_survey": {survey: t}, "validation": {survey: {"n": ...,
        "macro_f1_fixed": ..., "macro_f1_fitted": ...}}}``, JSON-ready; the macro-F1 figures are
        those of the fitting stamps at ``prefer`` and at the fitted threshold.
    """
    p = np.asarray(p_binary, dtype=float).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    names = np.asarray([str(s) for s in surveys], dtype=object)
    if not (len(p) == len(y) == len(names)):
        raise BinarycatError(f"Thresholds need one label and one survey per probability: got {len(p)} "
                             f"probabilities, {len(y)} labels and {len(names)} surveys.")
    per_survey, validation = {}, {}
    for survey in sorted(set(names)):
        sel = names == survey
        t = best_threshold(p[sel], y[sel], prefer)
        fixed, fitted = macro_f1_at_thresholds(p[sel], y[sel], [prefer, t])
        per_survey[survey] = t
        validation[survey] = {"n": int(sel.sum()), "macro_f1_fixed": float(fixed), "macro_f1_fitted": float(fitted)}
    return {"rule": THRESHOLD_RULE, "per_survey": per_survey, "validation": validation}


def threshold_table(fitted: dict | None) -> dict[str, float]:
    """``{survey: threshold}`` of what `fit_survey_thresholds` returned (``{}`` for None), checked.

    Raises
    ------
    BinarycatError
        When a stored threshold is not a number between 0 and 1.
    """
    table = (fitted or {}).get("per_survey") or {}
    try:
        table = {str(k): float(v) for k, v in table.items()}
    except (TypeError, ValueError):
        table = {"": float("nan")}
    if not all(0.0 <= t <= 1.0 for t in table.values()):
        raise BinarycatError("The model's stored decision thresholds must be numbers between 0 and 1.")
    return table


def stamp_thresholds(table: dict[str, float], surveys, default: float = FIXED_THRESHOLD) -> np.ndarray:
    """Each stamp's decision threshold: its survey's in ``table`` (`threshold_table`), else ``default``."""
    return np.array([table.get(str(s), default) for s in surveys], dtype=np.float64)
