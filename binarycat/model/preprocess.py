"""The one per-stamp transformation shared by training and prediction, stored with each model.

``stamp_to_input`` (normalisation ``"asinh-mad-v1"``, geometry ``"square-crop-resample-v1"``):

1. **Geometry.** A non-square stamp is centre-cropped to a square; the square is resampled to
   ``input_size`` x ``input_size`` with antialiased bilinear interpolation. Every survey's stamp
   covers the same field, so resampling (not cropping) keeps the field and changes only the
   sampling: a survey whose PSF is wider than a 2.5" pair shows one blob at any size.
2. **Normalisation.** NaN pixels become the median; the median is subtracted; pixels are
   divided by 1.4826 x MAD (a robust noise estimate) and passed through ``asinh(z / 3)``,
   which is linear near the noise and logarithmic for bright cores, so a faint companion
   stays visible next to a bright primary; finally divided by the peak (at least 1) so every
   stamp spans about [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["NORMALISATION", "GEOMETRY", "normalise_stamp", "stamp_to_input", "stamps_to_tensor"]

NORMALISATION = "asinh-mad-v1"
GEOMETRY = "square-crop-resample-v1"


def normalise_stamp(data: np.ndarray) -> np.ndarray:
    """Robust asinh normalisation of one stamp (see module docstring); float32."""
    x = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(x)
    med = float(np.median(x[finite])) if finite.any() else 0.0
    x = np.where(finite, x, med) - med
    mad = float(np.median(np.abs(x[finite]))) if finite.any() else 0.0
    sigma = 1.4826 * mad if mad > 0 else (float(np.std(x)) or 1.0)
    y = np.arcsinh(x / (3.0 * sigma))
    return (y / max(float(y.max()), 1.0)).astype(np.float32)


def _centre_square(x: np.ndarray) -> np.ndarray:
    h, w = x.shape
    n = min(h, w)
    top, left = (h - n) // 2, (w - n) // 2
    return x[top : top + n, left : left + n]


def stamp_to_input(data: np.ndarray, input_size: int) -> torch.Tensor:
    """One stamp as a (1, input_size, input_size) float32 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(_centre_square(normalise_stamp(data))))[None, None]
    if x.shape[-1] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False,
                          antialias=True)
    return x[0]


def stamps_to_tensor(arrays, input_size: int) -> torch.Tensor:
    """A list of stamps as an (N, 1, input_size, input_size) tensor."""
    if len(arrays) == 0:
        return torch.empty(0, 1, input_size, input_size)
    return torch.stack([stamp_to_input(a, input_size) for a in arrays])
