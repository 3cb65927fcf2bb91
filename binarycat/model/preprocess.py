"""The one per-stamp transformation shared by training and prediction, stored with each model.

``stamp_to_input`` (normalisation ``"asinh-mad-v1"``, geometry ``"fixed-scale-crop-v1"``):

1. **Normalisation**, on the whole stamp: NaN pixels become the median; the median is
   subtracted; pixels are divided by 1.4826 x MAD (a robust noise estimate) and passed through
   ``asinh(z / 3)``, which is linear near the noise and logarithmic for bright cores, so a
   faint companion stays visible next to a bright primary; finally divided by the peak (at
   least 1) so every stamp spans about [0, 1].
2. **Geometry.** A non-square stamp is centre-cropped to a square. The square is resampled
   (antialiased bilinear) from its own pixel scale to ``input_scale_arcsec`` per pixel, then
   centre-cropped (or zero-padded) to ``input_size`` pixels. Every survey thus reaches the
   model at one angular scale: the default 0.1"/px x 64 px is a 6.4" field, enough for a
   companion at the 2.5" limit of the definition, while most unrelated stars farther out fall
   outside it, and an HST pair 0.2" apart stays two pixels apart instead of being averaged
   away. A 2MASS PSF (2.7") stays a 27-pixel blob at the same scale, which is the point: the
   network sees what each survey can and cannot resolve.

   Without a pixel scale (``pixel_scale_arcsec=None``) the whole square is resampled to
   ``input_size`` (geometry ``"square-resample-v1"``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "NORMALISATION", "GEOMETRY", "normalise_stamp", "resample_to_scale", "stamp_to_input", "stamps_to_tensor",
]

NORMALISATION = "asinh-mad-v1"
GEOMETRY = "fixed-scale-crop-v1"
DEFAULT_INPUT_SCALE_ARCSEC = 0.1


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


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _crop_or_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    n = x.shape[-1]
    if n >= size:
        start = (n - size) // 2
        return x[..., start : start + size, start : start + size]
    before = (size - n) // 2
    return F.pad(x, (before, size - n - before, before, size - n - before))


def resample_to_scale(image: np.ndarray, input_size: int, pixel_scale_arcsec: float | None = None,
                      input_scale_arcsec: float | None = DEFAULT_INPUT_SCALE_ARCSEC) -> torch.Tensor:
    """The geometry step alone: an image as (1, input_size, input_size) at ``input_scale_arcsec``."""
    x = torch.from_numpy(np.ascontiguousarray(_centre_square(np.asarray(image, np.float32))))[None, None]
    if pixel_scale_arcsec is None or input_scale_arcsec is None:
        return _resize(x, input_size)[0]
    n_out = max(1, int(round(x.shape[-1] * pixel_scale_arcsec / input_scale_arcsec)))
    return _crop_or_pad(_resize(x, n_out), input_size)[0]


def stamp_to_input(data: np.ndarray, input_size: int, pixel_scale_arcsec: float | None = None,
                   input_scale_arcsec: float | None = DEFAULT_INPUT_SCALE_ARCSEC) -> torch.Tensor:
    """One stamp as a (1, input_size, input_size) float32 tensor (see the module docstring)."""
    return resample_to_scale(normalise_stamp(data), input_size, pixel_scale_arcsec, input_scale_arcsec)


def stamps_to_tensor(arrays, input_size: int, pixel_scales=None,
                     input_scale_arcsec: float | None = DEFAULT_INPUT_SCALE_ARCSEC) -> torch.Tensor:
    """A list of stamps as an (N, 1, input_size, input_size) tensor."""
    if len(arrays) == 0:
        return torch.empty(0, 1, input_size, input_size)
    scales = pixel_scales if pixel_scales is not None else [None] * len(arrays)
    return torch.stack([stamp_to_input(a, input_size, s, input_scale_arcsec) for a, s in zip(arrays, scales)])
