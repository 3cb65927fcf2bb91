"""The one per-stamp transformation shared by training and prediction, stored with each model.

``stamp_to_input`` (normalisation ``"asinh-mad-v1"`` or ``"asinh-noise-v1"``, geometry
``"fixed-scale-crop-v1"``):

1. **Normalisation**, on the whole stamp: NaN pixels become the median; the median is
   subtracted; pixels are divided by 1.4826 x MAD (a robust noise estimate) and passed through
   ``asinh(z / 3)``, which is linear near the noise and logarithmic for bright cores, so a
   faint companion stays visible next to a bright primary. Then:

   * ``"asinh-mad-v1"`` (the default) divides by the stamp's own peak (at least 1), so every
     stamp spans about [0, 1];
   * ``"asinh-noise-v1"`` divides by the fixed ``NOISE_UNITS_DIVISOR`` (8, about the stretched
     core of a star 4,500 sigma bright) instead, so every stamp keeps its pixels in units of
     its own noise: a companion of peak S/N 5 reaches ``asinh(5 / 3) / 8 = 0.16`` next to a
     faint primary or a bright one, and the sky noise has the same amplitude in every stamp.
     Under the peak scaling the same companion is 0.2 next to a bright star and 0.4 next to a
     faint one, and a network must recover the noise level from the texture of the sky to
     judge it against the label rule's S/N 5.
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

from binarycat.errors import BinarycatError

__all__ = [
    "NORMALISATION", "NORMALISATIONS", "GEOMETRY", "check_normalisation", "normalise_stamp", "normalise_stamps", "resample_to_scale", "row_medians",
    "stamp_to_input", "stamps_to_tensor",
]

NORMALISATION = "asinh-mad-v1"
#: Every normalisation `stamp_to_input` knows; a model stores the one it was trained with.
NORMALISATIONS = ("asinh-mad-v1", "asinh-noise-v1")
#: What ``"asinh-noise-v1"`` divides every stretched stamp by, in place of its own peak.
NOISE_UNITS_DIVISOR = 8.0
GEOMETRY = "fixed-scale-crop-v1"
DEFAULT_INPUT_SCALE_ARCSEC = 0.1


def check_normalisation(name: str) -> str:
    """``name`` if it is one of `NORMALISATIONS`; otherwise a `BinarycatError` naming them."""
    if name not in NORMALISATIONS:
        raise BinarycatError(f"Unknown normalisation {name!r}; choose one of {', '.join(NORMALISATIONS)}.")
    return name


def _peak_scaled(normalisation: str) -> bool:
    return check_normalisation(normalisation) == "asinh-mad-v1"


def normalise_stamp(data: np.ndarray, normalisation: str = NORMALISATION) -> np.ndarray:
    """Robust asinh normalisation of one stamp (see module docstring); float32."""
    x = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(x)
    med = float(np.median(x[finite])) if finite.any() else 0.0
    x = np.where(finite, x, med) - med
    mad = float(np.median(np.abs(x[finite]))) if finite.any() else 0.0
    sigma = 1.4826 * mad if mad > 0 else (float(np.std(x)) or 1.0)
    y = np.arcsinh(x / (3.0 * sigma))
    divisor = max(float(y.max()), 1.0) if _peak_scaled(normalisation) else NOISE_UNITS_DIVISOR
    return (y / divisor).astype(np.float32)


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
                   input_scale_arcsec: float | None = DEFAULT_INPUT_SCALE_ARCSEC,
                   normalisation: str = NORMALISATION) -> torch.Tensor:
    """One stamp as a (1, input_size, input_size) float32 tensor (see the module docstring)."""
    return resample_to_scale(normalise_stamp(data, normalisation), input_size, pixel_scale_arcsec,
                             input_scale_arcsec)


def _median_by_partition(a: np.ndarray) -> np.ndarray:
    m = a.shape[1]
    k = m // 2
    part = np.partition(a, k, axis=1)
    hi = part[:, k]
    if m % 2:
        return hi.copy()
    return (part[:, :k].max(axis=1) + hi) / np.float32(2)


def row_medians(a: np.ndarray, *, sample: int = 1024, margin: float = 0.04) -> np.ndarray:
    """``np.median(a, axis=1)`` of a finite float32 (N, M) array, bit for bit, 2-3x faster.

    NumPy's median partitions each row around three positions (the two middle ones and the
    last, for its NaN check). Here the rows hold no NaN, so: the middle order statistics of a
    strided sample of each row bracket the row's median; one pass counts the pixels below the
    bracket and picks out those inside it (a few per cent of the row), and only those are
    partitioned. A row whose bracket misses falls back to a full partition. An even-length
    median is the float32 mean of the two middle values, as in NumPy.
    """
    a = np.asarray(a, np.float32)
    n, m = a.shape
    if m < 8 * sample or n == 0:
        return _median_by_partition(a)
    k = m // 2
    ks = (k - 1, k) if m % 2 == 0 else (k, k)
    s = np.sort(a[:, :: m // sample], axis=1)
    ns = s.shape[1]
    lo = s[:, int(ns * (0.5 - margin))][:, None]
    hi = s[:, min(ns - 1, int(ns * (0.5 + margin)))][:, None]
    below = a < lo
    band = ~below & (a <= hi)
    n_below = below.sum(axis=1)
    n_band = band.sum(axis=1)
    values = a[band]
    ends = np.cumsum(n_band)
    out = np.empty(n, np.float32)
    for i in range(n):
        j0, j1 = ks[0] - n_below[i], ks[1] - n_below[i]
        if j0 < 0 or j1 >= n_band[i]:
            out[i] = _median_by_partition(a[i : i + 1])[0]
            continue
        part = np.partition(values[ends[i] - n_band[i] : ends[i]], (j0, j1))
        out[i] = part[j0] if j0 == j1 else (part[j0] + part[j1]) / np.float32(2)
    return out


_BLOCK_BYTES = 1 << 20     # stamps normalised together: passes over them stay in the L2 cache


def normalise_stamps(stack: np.ndarray, normalisation: str = NORMALISATION) -> np.ndarray:
    """`normalise_stamp` of each image of an (N, H, W) stack at once; float32, same numbers.

    Images whose pixels are all finite and whose MAD is positive (nearly all) go through one
    vectorised pass, a few images (about a MiB) at a time; the others (NaN/inf pixels, flat
    images) through `normalise_stamp`.
    """
    x = np.asarray(stack, dtype=np.float32)
    n = x.shape[0]
    out = np.empty(x.shape, np.float32)
    if n == 0 or x[0].size == 0:
        return out
    peak = _peak_scaled(normalisation)
    step = max(1, _BLOCK_BYTES // (4 * x[0].size))
    flat, flat_out = x.reshape(n, -1), out.reshape(n, -1)
    for i in range(0, n, step):
        _normalise_block(flat[i : i + step], flat_out[i : i + step], normalisation, peak)
    return out


def _normalise_block(flat: np.ndarray, out: np.ndarray, normalisation: str, peak_scaled: bool) -> None:
    ok = np.isfinite(flat).all(axis=1)
    if ok.all():
        good, dest = flat, out                           # straight into the output
    elif ok.any():
        good, dest = flat[ok], np.empty((int(ok.sum()), flat.shape[1]), np.float32)
    else:
        good = dest = None
    if good is not None:
        med = row_medians(good)                          # float32, == np.median of each image
        centred = np.subtract(good, med[:, None], out=dest)
        mad = row_medians(np.abs(centred))
        fine = mad > 0
        # what normalise_stamp does with Python floats: 1.4826 * mad in float64, then x / (3 sigma)
        # with the divisor rounded to float32 (NumPy's weak scalars), then / max(peak, 1.0)
        div = (3.0 * (1.4826 * mad.astype(np.float64))).astype(np.float32)
        div[~fine] = 1.0
        y = np.arcsinh(np.divide(centred, div[:, None], out=centred), out=centred)
        if peak_scaled:
            y /= np.maximum(y.max(axis=1).astype(np.float64), 1.0).astype(np.float32)[:, None]
        else:
            y /= np.float32(NOISE_UNITS_DIVISOR)
        rows = np.flatnonzero(ok)
        if dest is not out:
            out[rows] = y
        ok[rows[~fine]] = False                          # flat images: the per-stamp path
    for i in np.flatnonzero(~ok):
        out[i] = normalise_stamp(flat[i], normalisation)


def _torch_row_medians(x: torch.Tensor) -> torch.Tensor:
    """``np.median`` of each row of a finite float32 (N, M) tensor, on its device."""
    m = x.shape[1]
    s = torch.sort(x, dim=1).values
    if m % 2:
        return s[:, m // 2].clone()
    return (s[:, m // 2 - 1] + s[:, m // 2]) / 2


def normalise_stamps_torch(x: torch.Tensor, normalisation: str = NORMALISATION) -> torch.Tensor:
    """`normalise_stamp` of each row of a float32 (N, M) tensor of finite pixels, on its device.

    The same arithmetic as `normalise_stamps` in torch (for a CUDA device, where the stamps are
    normalised next to the model); equal to it within float32 rounding (``asinh`` and, for flat
    images, ``std`` may differ by an ulp between libraries).
    """
    med = _torch_row_medians(x)
    centred = x - med[:, None]
    mad = _torch_row_medians(centred.abs()).double()
    sigma = torch.where(mad > 0, 1.4826 * mad, centred.std(dim=1, correction=0).double())
    sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    y = torch.asinh(centred / (3.0 * sigma).float()[:, None])
    if not _peak_scaled(normalisation):
        return y / NOISE_UNITS_DIVISOR
    return y / y.amax(dim=1).double().clamp(min=1.0).float()[:, None]


def stamps_to_tensor(arrays, input_size: int, pixel_scales=None,
                     input_scale_arcsec: float | None = DEFAULT_INPUT_SCALE_ARCSEC, *,
                     device: torch.device | str | None = None,
                     normalisation: str = NORMALISATION) -> torch.Tensor:
    """A list of stamps as an (N, 1, input_size, input_size) tensor: `stamp_to_input` of each.

    Stamps are grouped by (shape, pixel scale): each group is normalised in one vectorised pass
    (`normalise_stamps`) and resampled with one ``F.interpolate`` call, which gives the same
    numbers as `stamp_to_input` one stamp at a time, many times faster. With a non-CPU
    ``device`` the raw stamps are copied there (through pinned memory) and normalised and
    resampled on it (`normalise_stamps_torch`); the tensor returned is on ``device``.
    """
    check_normalisation(normalisation)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    n = len(arrays)
    out = torch.empty(n, 1, input_size, input_size, device=dev)
    if n == 0:
        return out
    scales = list(pixel_scales) if pixel_scales is not None else [None] * n
    groups: dict[tuple, list[int]] = {}
    for i, (a, s) in enumerate(zip(arrays, scales)):
        key = (np.shape(a), None if s is None or input_scale_arcsec is None else float(s))
        groups.setdefault(key, []).append(i)
    for (shape, scale), idx in groups.items():
        if len(shape) != 2:
            raise ValueError(f"A stamp must be 2-D, got shape {shape}.")
        if dev.type == "cuda":  # stacked straight into pinned memory, copied asynchronously
            pinned = torch.empty((len(idx), *shape), dtype=torch.float32, pin_memory=True)
            stack = np.stack([np.asarray(arrays[i], np.float32) for i in idx], out=pinned.numpy())
        else:
            pinned = None
            stack = np.stack([np.asarray(arrays[i], np.float32) for i in idx])
        part = _group_to_input(stack, input_size, scale, input_scale_arcsec, dev, pinned, normalisation)
        if len(idx) == n:
            return part.contiguous()
        out[torch.as_tensor(idx, device=dev)] = part
    return out


def _group_to_input(stack: np.ndarray, input_size: int, pixel_scale_arcsec: float | None,
                    input_scale_arcsec: float | None, device: torch.device | None = None,
                    pinned: torch.Tensor | None = None, normalisation: str = NORMALISATION) -> torch.Tensor:
    """`stamp_to_input` of an (N, H, W) stack of images of one pixel scale: (N, 1, S, S).

    On the CPU with NumPy (`normalise_stamps`); on another device with torch there
    (`normalise_stamps_torch`), ``pinned`` being ``stack`` as a pinned-memory tensor if any.
    """
    n, h, w = stack.shape
    if device is None or device.type == "cpu":
        norm = torch.from_numpy(normalise_stamps(stack, normalisation))
    else:
        flat = stack.reshape(n, -1)
        src = (pinned if pinned is not None else torch.from_numpy(stack)).reshape(n, -1)
        ok = np.isfinite(flat).all(axis=1)
        if ok.all():
            norm = normalise_stamps_torch(src.to(device, non_blocking=True), normalisation)
        else:  # NaN/inf pixels: those stamps on the CPU
            norm = torch.empty(flat.shape, device=device)
            rows = np.flatnonzero(ok)
            if rows.size:
                norm[torch.as_tensor(rows, device=device)] = normalise_stamps_torch(
                    src[torch.from_numpy(rows)].to(device), normalisation)
            for i in np.flatnonzero(~ok):
                norm[int(i)] = torch.from_numpy(normalise_stamp(flat[i], normalisation)).to(device)
        norm = norm.reshape(n, h, w)
    m = min(h, w)
    top, left = (h - m) // 2, (w - m) // 2
    x = norm[:, None, top : top + m, left : left + m].contiguous()
    if pixel_scale_arcsec is None or input_scale_arcsec is None:
        return _resize(x, input_size)
    n_out = max(1, int(round(m * pixel_scale_arcsec / input_scale_arcsec)))
    return _crop_or_pad(_resize(x, n_out), input_size)
