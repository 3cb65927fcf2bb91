"""Stacking a survey's per-filter cutouts of one source into one image.

The rule, shared by ``binarycat ingest`` and ``binarycat fetch``:

1. **Grouping.** Files whose names share a prefix and differ in the last ``_``-separated
   token are the filters of one source and survey: ``00222_PanSTARRS_g.fits`` and
   ``00222_PanSTARRS_r.fits`` form the group ``00222_PanSTARRS``. A lone file is stored as it is.
2. **One grid.** Every filter is put on the grid of the filter with the finest pixel scale
   (the first such filter in the survey's band order), with ``reproject.reproject_interp``
   through the files' WCS. Filters already on that grid (same shape and WCS) are untouched.
3. **Normalisation.** Each filter is background-subtracted (3σ-clipped median) and divided
   by its 3σ-clipped standard deviation, so each becomes a signal-to-noise map and a deep
   filter does not drown a shallow one.
4. **Stack.** The mean of those maps, ignoring NaN (a pixel NaN in every filter stays NaN).
   Pixels are float32.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS

from binarycat.ingest.fits_io import FitsImage

__all__ = ["group_by_prefix", "split_name", "normalise", "stack_images"]

_SUFFIX = re.compile(r"\.(fits|fit|fts)(\.gz|\.fz)?$", re.IGNORECASE)


def split_name(path: Path) -> tuple[str, str]:
    """``00222_PanSTARRS_g.fits`` -> (``00222_PanSTARRS``, ``g``); no ``_`` -> (stem, "")."""
    stem = _SUFFIX.sub("", Path(path).name)
    if "_" not in stem:
        return stem, ""
    prefix, band = stem.rsplit("_", 1)
    return prefix, band


def group_by_prefix(paths: Iterable[Path]) -> dict[str, list[Path]]:
    """Group files by name prefix (see the module docstring), each group sorted by name."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in paths:
        prefix, _ = split_name(p)
        groups[prefix].append(Path(p))
    return {k: sorted(v) for k, v in sorted(groups.items())}


def normalise(data: np.ndarray) -> np.ndarray:
    """Background-subtracted signal-to-noise map of one filter (see module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, median, std = sigma_clipped_stats(data, sigma=3.0, maxiters=5)
    if not np.isfinite(std) or std <= 0:
        finite = data[np.isfinite(data)]
        std = float(np.std(finite)) if finite.size else 1.0
        std = std if std > 0 else 1.0
    return ((data - median) / std).astype(np.float32)


def _same_grid(a: FitsImage, b: FitsImage) -> bool:
    if a.data.shape != b.data.shape:
        return False
    if a.wcs is None or b.wcs is None:
        return True
    return bool(np.allclose(a.wcs.wcs.crval, b.wcs.wcs.crval, rtol=0, atol=1e-9)
                and np.allclose(a.wcs.wcs.crpix, b.wcs.wcs.crpix, rtol=0, atol=1e-6)
                and np.allclose(a.wcs.pixel_scale_matrix, b.wcs.pixel_scale_matrix, rtol=1e-9, atol=0))


def reference_index(images: Sequence[FitsImage]) -> int:
    """Index of the image whose grid the stack uses: the finest pixel scale, first on ties."""
    scales = [im.pixel_scale_arcsec or np.inf for im in images]
    return int(np.argmin(scales)) if np.isfinite(min(scales)) else 0


def stack_images(images: Sequence[FitsImage]) -> tuple[np.ndarray, WCS | None]:
    """Stack per-filter images of one source and survey into one float32 image.

    Returns
    -------
    stack : ndarray
        The mean signal-to-noise map on the reference grid.
    wcs : WCS or None
        The reference grid's WCS.
    """
    if not images:
        raise ValueError("nothing to stack")
    ref = images[reference_index(images)]
    planes = []
    for im in images:
        data = im.data
        if not _same_grid(im, ref):
            if im.wcs is None or ref.wcs is None:
                raise ValueError(
                    f"{im.path.name} and {ref.path.name} differ in shape and lack a WCS to align them"
                )
            from reproject import reproject_interp

            data, _ = reproject_interp((im.data, im.wcs), ref.wcs, shape_out=ref.data.shape)
        planes.append(normalise(np.asarray(data, dtype=np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixel columns stay NaN
        stack = np.nanmean(np.stack(planes), axis=0) if len(planes) > 1 else planes[0]
    return stack.astype(np.float32), ref.wcs
