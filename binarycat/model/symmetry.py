"""Test-time augmentation over the sky's symmetries that leave a stamp's class unchanged.

A resolved pair stays a resolved pair, and a single star a single star, when the stamp is
flipped or turned by a multiple of 90 degrees; these eight views (the dihedral group of the
square) move pixels without resampling them, so no PSF is smeared. They are the flips and
rotations training augments with (`binarycat.model.data.augment_batch`), so the network has
learnt each view, but it does not answer all eight identically: averaging its logits over
them cancels much of that orientation-dependent error.

A model stores how many views it predicts with as ``config["views"]`` (1 or 8; models
without the key predict with 1). Its temperature is fitted on logits averaged over the same
views, and training, `binarycat evaluate` and `binarycat predict` all go through
`view_averaged_logits`, so a stamp gets the same ``p_binary`` everywhere. Eight views cost
eight forward passes.

Examples
--------
>>> import torch
>>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
>>> len(list(dihedral_views(x)))
8
>>> view_averaged_logits(lambda v: v.flatten(1)[:, :1], x, 8).item()   # the corners' mean
1.5
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

__all__ = ["VIEW_COUNTS", "dihedral_views", "view_averaged_logits", "views_of"]

#: The numbers of views a model may predict with: the stamp alone, or all eight symmetries.
VIEW_COUNTS = (1, 8)


def dihedral_views(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """The eight flips and 90-degree rotations of a batch ``(..., H, W)``, the identity first."""
    for k in range(4):
        turned = torch.rot90(x, k, dims=(-2, -1)) if k else x
        yield turned
        yield turned.flip(-1)


def views_of(config: dict) -> int:
    """How many views a model predicts with (``config["views"]``; 1 for models without it)."""
    views = int(config.get("views", 1))
    if views not in VIEW_COUNTS:
        raise ValueError(f"A model predicts with 1 or 8 views, not {views}.")
    return views


def view_averaged_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: int = 1,
                         layout: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``model``'s logits for ``x`` averaged over ``views`` symmetric views (1: the plain forward).

    ``layout`` puts each view in the memory layout the model expects (e.g. channels-last on
    CUDA); a rotated view is otherwise a strided copy-free tensor. Logits are averaged in
    float32 whatever precision the model ran in.
    """
    if views not in VIEW_COUNTS:
        raise ValueError(f"views must be 1 or 8, not {views}.")
    if views == 1:
        return model(layout(x) if layout else x)
    total = None
    for view in dihedral_views(x):
        out = model(layout(view) if layout else view.contiguous()).float()
        total = out if total is None else total + out
    return total / views
