"""Classification metrics in the layout of the paper's Table 2 (sklearn's classification report)."""

from __future__ import annotations

import numpy as np

__all__ = ["classification_report", "format_report", "confusion_matrix", "macro_f1_at_thresholds", "macro_f1_difference_interval",
           "paired_disagreement", "survey_reports"]

CLASS_NAMES = ("not binary", "binary")


def confusion_matrix(y_true, y_pred, n_classes: int = 2) -> np.ndarray:
    """``m[i, j]`` = number of samples of true class i predicted as j."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def classification_report(y_true, y_pred, class_names=CLASS_NAMES) -> dict:
    """Precision, recall, F1 and support per class, accuracy, macro and weighted averages.

    A ratio with a zero denominator is 0 (sklearn's ``zero_division=0``).
    """
    m = confusion_matrix(y_true, y_pred, len(class_names))
    tp = np.diag(m).astype(float)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = int(support.sum())
    report = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    report["accuracy"] = float(tp.sum() / total) if total else 0.0
    report["macro avg"] = {
        "precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean()),
        "support": total,
    }
    w = support / total if total else np.zeros_like(tp)
    report["weighted avg"] = {
        "precision": float((precision * w).sum()), "recall": float((recall * w).sum()),
        "f1": float((f1 * w).sum()), "support": total,
    }
    report["confusion_matrix"] = m.tolist()
    return report


def survey_reports(y_true, y_pred, surveys, names) -> tuple[dict, dict]:
    """`classification_report` of all stamps, and of each survey in ``names`` that has stamps."""
    y_true, y_pred, surveys = np.asarray(y_true), np.asarray(y_pred), np.asarray(surveys)
    overall = classification_report(y_true, y_pred)
    per = {s: classification_report(y_true[surveys == s], y_pred[surveys == s]) for s in names if (surveys == s).any()}
    return overall, per


def macro_f1_at_thresholds(scores, labels, thresholds, *, inclusive: bool = True) -> np.ndarray:
    """Macro-F1 of the rule ``score >= t`` (``score > t`` when not ``inclusive``) for every ``t``.

    The same number `classification_report` gives for each threshold on its own, from one sort
    of the scores instead of one report per threshold.

    Parameters
    ----------
    scores : array_like of float, shape (N,)
    labels : array_like of int, shape (N,)
        0 (not binary) or 1 (binary).
    thresholds : array_like of float, shape (M,)

    Returns
    -------
    numpy.ndarray, shape (M,)
    """
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    order = np.argsort(s, kind="stable")
    positives_below = np.concatenate([[0], np.cumsum(y[order])])
    # stamps called "not binary" by each threshold: those below it (at or below it when strict)
    k = np.searchsorted(s[order], np.asarray(thresholds, dtype=float), side="left" if inclusive else "right")
    n_pos = int(y.sum())
    fn = positives_below[k]
    tn = k - fn
    tp = n_pos - fn
    fp = (len(y) - n_pos) - tn
    return _macro_f1_of_counts(tp, fp, fn, tn)


def _macro_f1_of_counts(tp, fp, fn, tn) -> np.ndarray:
    def f1(hit, miss):
        denom = 2 * hit + miss
        return np.divide(2.0 * hit, denom, out=np.zeros(np.shape(hit)), where=denom > 0)

    return (f1(tp, fp + fn) + f1(tn, fp + fn)) / 2.0


def macro_f1_difference_interval(y_true, pred_a, pred_b, *, level: float = 0.95, n_resamples: int = 4000,
                                 seed: int = 0) -> tuple[float, float, float]:
    """Macro-F1 of ``pred_a`` minus that of ``pred_b`` on the same stamps, with a paired bootstrap interval.

    The stamps are resampled with replacement, the same draw for both classifiers, so the
    interval reflects how much the difference depends on which stamps happened to be drawn.
    A resample is a multinomial draw over the eight (truth, a, b) cells, which is the same
    distribution as resampling the stamps themselves and costs no more for a million stamps
    than for ten.

    Parameters
    ----------
    y_true, pred_a, pred_b : array_like of int, shape (N,)
        Truth and the two classifiers' 0/1 labels.
    level : float
        Central probability of the interval (percentile bootstrap).
    n_resamples : int
    seed : int
        Seed of the resampling, so a report is reproducible.

    Returns
    -------
    (difference, low, high) : tuple of float
        ``(0.0, 0.0, 0.0)`` without stamps.
    """
    y, a, b = (np.asarray(v, dtype=np.int64).ravel() for v in (y_true, pred_a, pred_b))
    if len(y) == 0:
        return 0.0, 0.0, 0.0
    cells = np.bincount(4 * y + 2 * a + b, minlength=8)
    draws = np.random.default_rng(seed).multinomial(len(y), cells / len(y), size=n_resamples)
    counts = np.vstack([cells, draws]).reshape(-1, 2, 2, 2)      # [draw, truth, a, b]

    def score(c_pred):   # c_pred[draw, truth, predicted]
        return _macro_f1_of_counts(c_pred[:, 1, 1], c_pred[:, 0, 1], c_pred[:, 1, 0], c_pred[:, 0, 0])

    diff = score(counts.sum(axis=3)) - score(counts.sum(axis=2))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(diff[1:], [tail, 100 - tail])
    return float(diff[0]), float(low), float(high)


def paired_disagreement(y_true, pred_a, pred_b) -> dict:
    """The stamps only one of two classifiers gets right, with McNemar's exact test.

    Two classifiers scored on the same stamps differ only where exactly one of them is right;
    the stamps both get right or both get wrong say nothing about which is better. Under the
    hypothesis that the two are equally good, each such stamp is as likely to favour either, so
    the number favouring ``a`` is binomial with p = 1/2 (McNemar's test, exact form, two-sided).
    Where the macro-F1 of two near-perfect classifiers differs by one stamp, this says how
    little that stamp weighs.

    Parameters
    ----------
    y_true, pred_a, pred_b : array_like of int, shape (N,)
        Truth and the two classifiers' 0/1 labels.

    Returns
    -------
    dict
        ``{"only_a": ..., "only_b": ..., "p_value": ...}``: stamps only ``a`` gets right, stamps
        only ``b`` gets right, and the exact two-sided p-value (1.0 when they never disagree).

    Examples
    --------
    >>> paired_disagreement([1, 1, 0, 0, 1], [1, 1, 0, 1, 0], [1, 0, 0, 0, 0])
    {'only_a': 1, 'only_b': 1, 'p_value': 1.0}
    """
    from scipy.stats import binomtest

    y, a, b = (np.asarray(v, dtype=np.int64).ravel() for v in (y_true, pred_a, pred_b))
    right_a, right_b = a == y, b == y
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(min(p, 1.0))}


def format_report(report: dict) -> str:
    """The report as the familiar fixed-width text table."""
    lines = [f"{'':>14} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    names = [k for k, v in report.items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg")]
    for name in names:
        r = report[name]
        lines.append(f"{name:>14} {r['precision']:9.2f} {r['recall']:9.2f} {r['f1']:9.2f} {r['support']:9d}")
    lines.append("")
    total = report["macro avg"]["support"]
    lines.append(f"{'accuracy':>14} {'':>9} {'':>9} {report['accuracy']:9.2f} {total:9d}")
    for avg in ("macro avg", "weighted avg"):
        r = report[avg]
        lines.append(f"{avg:>14} {r['precision']:9.2f} {r['recall']:9.2f} {r['f1']:9.2f} {r['support']:9d}")
    return "\n".join(lines)
