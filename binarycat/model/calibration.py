"""Making ``p_binary`` mean what it says: temperature scaling and the expected calibration error.

A network trained with cross-entropy is usually over-confident: of the stamps it calls binary
with p = 0.95, fewer than 95 % are. Temperature scaling (Guo et al. 2017, "On Calibration of
Modern Neural Networks") divides the logits by one number ``T > 0`` fitted on the validation
split by minimising the negative log-likelihood. Dividing by ``T`` never changes which class
has the larger logit, so labels at the 0.5 threshold, and so the classification report, stay
the same; only the probabilities move.

The expected calibration error (ECE) measured here is the binary one: stamps are put into
``n_bins`` equal-width bins of ``p_binary`` and

    ECE = sum over bins of (n_bin / n) * |fraction of binaries in the bin - mean p_binary in the bin|

which is the gap a reliability diagram shows, weighted by how many stamps fall in each bin.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar

__all__ = ["expected_calibration_error", "fit_temperature", "probabilities"]

#: log10 of the smallest and largest temperature searched.
_LOG10_T_RANGE = (-2.0, 2.0)


def probabilities(logits, temperature: float = 1.0) -> np.ndarray:
    """``p_binary = softmax(logits / temperature)[:, 1]`` of an (N, 2) array of logits."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / float(temperature)
    return torch.softmax(z, dim=1)[:, 1].numpy()


def _nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    return float(torch.nn.functional.cross_entropy(logits / temperature, labels))


def fit_temperature(logits, labels) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels``.

    Parameters
    ----------
    logits : array-like, shape (N, 2)
        Validation-split logits (before softmax).
    labels : array-like of int, shape (N,)
        0 (not binary) or 1 (binary).

    Returns
    -------
    float
        ``T`` in [0.01, 100]; 1.0 when there are no logits or only one class (nothing to fit).
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) == 0 or len(torch.unique(y)) < 2:
        return 1.0
    res = minimize_scalar(lambda log_t: _nll(z, y, 10.0 ** log_t), bounds=_LOG10_T_RANGE, method="bounded",
                          options={"xatol": 1e-4})
    return float(10.0 ** res.x)


def expected_calibration_error(p_binary, labels, n_bins: int = 15) -> float:
    """The binary ECE of ``p_binary`` against 0/1 ``labels`` (see the module docstring)."""
    p = np.asarray(p_binary, dtype=float)
    y = np.asarray(labels, dtype=float)
    if len(p) == 0:
        return 0.0
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    gap = np.abs(np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins))
    return float(gap.sum() / len(p))
