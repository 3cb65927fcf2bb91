"""Pair geometry as an auxiliary training target: how far a stamp lies from the label rule.

A resolved visual binary is labelled by a rule on two measured quantities (see
`binarycat.ingest.simulate.resolved_label`)::

    label = 1  iff  is_binary and separation >= FWHM and companion S/N >= 5

A 0/1 label tells the network on which side of that rule a stamp lies, never how far from it;
near the rule's limits, where nearly every error of a well-trained network sits, that is little to
learn a sharp boundary from. Where the pair's geometry is known (a simulated sky's ``truth.csv``,
or measurements from a deeper survey) training can also ask the network for the two *margins*
of the rule of every binary system::

    separation margin = clip(log2(separation / FWHM), -2, 2)
    S/N margin        = clip(log2(companion S/N / 5), -3, 3)

both zero exactly on the rule, negative on the single side. A linear head on the network's pooled
features (the input of its classification layer) regresses them with a smooth-L1 loss, weighted
against the cross-entropy ("learning using privileged information", Vapnik & Vashist 2009). The
head exists only during training: the stored network, its two outputs and every prediction are
those of the plain classifier.

Examples
--------
>>> geometry = {("7", "HST"): (0.5, 1.0)}    # read_pair_geometry(["sim1/truth.csv"])
>>> margin_targets(["7", "8"], ["HST", "HST"], geometry)
tensor([[0.5000, 1.0000],
        [   nan,    nan]])
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from binarycat.catalog.sources import read_table
from binarycat.errors import BinarycatError
from binarycat.ingest.surveys import get_survey

__all__ = ["MARGIN_LIMITS", "PairMarginHead", "margin_targets", "margin_loss", "read_pair_geometry"]

#: Each margin is clipped to +- this (log2 units): beyond, a stamp is far from the rule and its
#: exact distance says nothing about the boundary.
MARGIN_LIMITS = (2.0, 3.0)
#: The label rule's companion S/N limit.
SNR_LIMIT = 5.0
_COLUMNS = ("source_id", "survey", "is_binary", "separation_arcsec", "fwhm_arcsec", "companion_snr")


def read_pair_geometry(paths: Iterable[str | Path]) -> dict[tuple[str, str], tuple[float, float]]:
    """The two margins of the label rule for every binary (source, survey) of some truth tables.

    Parameters
    ----------
    paths : iterable of path
        Tables (CSV, Parquet, FITS, ...) with the columns of the simulator's ``truth.csv``:
        ``source_id``, ``survey``, ``is_binary``, ``separation_arcsec``, ``fwhm_arcsec`` and
        ``companion_snr``.

    Returns
    -------
    dict
        ``(source_id, canonical survey) -> (separation margin, S/N margin)``, for rows with
        ``is_binary`` true only: a single star has no pair geometry.

    Raises
    ------
    BinarycatError
        For a missing file or column, or an unknown survey.
    """
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for path in paths:
        table = read_table(path)
        missing = [c for c in _COLUMNS if c not in table.colnames]
        if missing:
            raise BinarycatError(f"{path} has no {', '.join(missing)} column; pair geometry needs "
                                 f"{', '.join(_COLUMNS)} (a simulator's truth.csv has them).")
        binary = np.asarray(table["is_binary"]).astype(bool)
        sep = np.asarray(table["separation_arcsec"], dtype=float)[binary]
        fwhm = np.asarray(table["fwhm_arcsec"], dtype=float)[binary]
        snr = np.asarray(table["companion_snr"], dtype=float)[binary]
        with np.errstate(divide="ignore", invalid="ignore"):
            m_sep = np.clip(np.log2(sep / fwhm), -MARGIN_LIMITS[0], MARGIN_LIMITS[0])
            m_snr = np.clip(np.log2(np.maximum(snr, 0.0) / SNR_LIMIT), -MARGIN_LIMITS[1], MARGIN_LIMITS[1])
        names = {s: get_survey(s).name for s in set(str(v) for v in table["survey"])}
        ids = [str(v) for v in np.asarray(table["source_id"])[binary]]
        surveys = [names[str(v)] for v in np.asarray(table["survey"])[binary]]
        for key, a, b in zip(zip(ids, surveys), m_sep, m_snr):
            out[key] = (float(a), float(b))
    return out


def margin_targets(source_ids: list[str], surveys: list[str],
                   geometry: dict[tuple[str, str], tuple[float, float]]) -> torch.Tensor:
    """(N, 2) margins for stamps of these sources and surveys; NaN where none is known."""
    rows = [geometry.get((s, v), (np.nan, np.nan)) for s, v in zip(source_ids, surveys)]
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 2)


def margin_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 loss over the known (non-NaN) margins of a batch; 0 when none is known."""
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return predicted.sum() * 0.0
    return nn.functional.smooth_l1_loss(predicted[known], target[known])


class PairMarginHead(nn.Module):
    """A linear regression of the two margins on the features a classifier's last layer sees.

    It listens on ``classifier`` (the network's final ``nn.Linear``, e.g. ``model.fc`` of a
    torchvision ResNet) with a forward pre-hook, so the network's own ``forward`` and outputs
    are untouched; after each forward pass of the network, ``margins()`` regresses the pooled
    features of that pass. Call ``detach()`` before the network is stored.
    """

    def __init__(self, classifier: nn.Linear):
        super().__init__()
        self.linear = nn.Linear(classifier.in_features, 2)
        self._features: torch.Tensor | None = None
        self._hook = classifier.register_forward_pre_hook(self._keep)

    def _keep(self, module, inputs):
        self._features = inputs[0]

    def margins(self) -> torch.Tensor:
        if self._features is None:
            raise RuntimeError("PairMarginHead.margins() needs a forward pass of the network first.")
        return self.linear(self._features.float())

    def detach(self) -> None:
        """Stop listening to the network, and free the features kept."""
        self._hook.remove()
        self._features = None
