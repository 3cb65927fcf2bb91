"""Classification metrics in the layout of the paper's Table 2 (sklearn's classification report)."""

from __future__ import annotations

import numpy as np

__all__ = ["classification_report", "format_report", "confusion_matrix"]

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
