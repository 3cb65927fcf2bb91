"""A classical visual-binary detector: one- versus two-component PSF fits.

This is the non-deep-learning baseline printed beside the CNN. It asks of every stamp the
question the paper's 2-D peak plots ask by eye: *is the light near the centre better
described by two point sources than by one?*

Method
------
A stamp is one 2-D image per (source, survey): the survey's filters stacked as a mean of
background-subtracted signal-to-noise maps (`binarycat.ingest.stacking`), so the background
is about 0 and the source sits at the centre. For one stamp, `fit_pair`:

1. **Region.** Only pixels within ``FIT_RADIUS_ARCSEC = 3.0"`` of the stamp centre are
   fitted: a pair is at most 2.5" wide and the unrelated field stars of the simulator are at
   least 3.5" away. NaN pixels are masked, never fatal. Where the 3" circle would span more
   than `_MAX_FIT_PIXELS` (64) pixels the stamp is first block-averaged by an integer factor,
   never so far that the PSF FWHM drops below 2 pixels (at the native scales of Pan-STARRS,
   SDSS9 and HST the factor is 1: HST's FWHM is only 1.6 pixels).
2. **Noise.** The per-pixel sigma is ``1.4826 * MAD`` of the finite pixels outside that
   circle (of all finite pixels when fewer than 16 lie outside, as in 10x10-pixel 2MASS
   stamps); their median is the background subtracted first. Both are robust to a field star.
3. **Models.** Circular Gaussians *integrated over each pixel* (a separable product of
   ``erf`` differences, so undersampled PSFs are modelled correctly) on a constant background:

   * one component: flux, centre (x, y), width, background;
   * two components: two fluxes and two centres, one shared width, background.

   Fluxes and background enter linearly and are solved exactly (weighted linear least squares)
   for every trial of the non-linear parameters (variable projection), so
   ``scipy.optimize.least_squares`` only iterates the centres and the log-width. The
   one-component fit starts at the brightest pixel, within one FWHM of the centre, of the crop
   smoothed by the PSF, with the survey's PSF width. The second component starts at the
   brightest local maximum (``scipy.ndimage.maximum_filter``) of the smoothed residual of
   that fit, the first at the single component's centre; should the pair collapse onto one
   star (a +/- dipole, which happens when the single Gaussian sat between two near-equal
   stars), the fit is retried with the first star mirrored about that centre.
4. **Comparison.** Both models are then fitted to the same pixels, those within
   4 FWHM of either starting position (inside the 3" circle; background-only pixels farther
   out add the same chi-square to both models, and skipping them keeps a 200x200 HST stamp
   fast), with the same weights: the variance ``sigma**2 + (PSF_MISMATCH * m)**2``, ``m``
   being the one-component model. The 3 % term stands for what no Gaussian fit removes near a
   bright star (source Poisson noise, the slightly different PSF widths of the stacked
   filters, real PSF wings); without it a bright single star "needs" a second component.
5. **Score.** ``score = sqrt(chi2_one - chi2_two)``, the significance of the second
   component in sigma-like units (a likelihood-ratio statistic: the models are nested), and
   **0** when the pair is implausible: two centres closer than
   ``MIN_SEPARATION_FWHM = 1.0`` FWHM, farther apart than ``MAX_SEPARATION_ARCSEC = 2.75"``
   (the 2.5" pair definition plus room for the fit's error) or a non-positive flux. The
   lower limit is the catalogue's own definition of a *resolved* pair (separation at least
   the survey's FWHM): a fit that finds a tight pair is not evidence of a resolved one, and
   with a 0.5 FWHM limit the sub-FWHM binaries, which are bright and fit well as pairs, were
   most of the false positives. `fit_pair` also returns the fitted separation (arcsec) and
   flux ratio (fainter / brighter) for reporting, whatever the score.

PSF family
----------
``profile="moffat"`` (the ``psf-pair-fit-moffat-v1`` baseline) replaces the Gaussians of
step 3 by circular Moffats ``(1 + r**2 / alpha**2) ** -beta`` averaged over each pixel, with
the power index beta fitted as a second shape parameter shared by both stars (started at 3,
kept within 1.1 to 51, where a Moffat is all but a Gaussian). Real PSFs have wings that a
Gaussian lacks; fitted with Gaussians, a bright single star with wings leaves a ring of
residual that a second component partly absorbs, so the Gaussian baseline calls such stars
pairs. The Moffat family contains (nearly) the Gaussian, and is about three times slower.

Decision rule
-------------
A stamp is called a resolved binary when its score exceeds its survey's threshold:
``label = int(score > thresholds[survey])``. `PairBaseline.fit` picks, for each survey on its
own, the threshold that maximises the macro-averaged F1 (`binarycat.model.metrics`) on the
stamps it is given (training and validation stamps, never test stamps): the midpoint of the
best gap between consecutive scores, the lowest such gap on ties. The score scale differs
from survey to survey (pixels per PSF, depth, sampling), hence one threshold per survey.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y, x = np.mgrid[0:40, 0:40] - 19.5
>>> star = lambda dx, f: f * np.exp(-((x - dx) ** 2 + y**2) / (2 * 1.87**2))
>>> img = star(-3.3, 50) + star(3.3, 50) + rng.normal(0, 1, (40, 40))
>>> fit = fit_pair(img, 0.25, 1.1)
>>> fit.score > 30, round(fit.separation_arcsec, 1), round(fit.flux_ratio, 1)
(True, 1.6, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares
from scipy.special import erf

from binarycat.errors import BinarycatError
from binarycat.model.metrics import macro_f1_at_thresholds
from binarycat.parallel import map_chunks, worker_count

__all__ = [
    "BASELINE_NAME",
    "BASELINE_NAMES",
    "PSF_PROFILES",
    "FIT_RADIUS_ARCSEC",
    "MAX_SEPARATION_ARCSEC",
    "MIN_SEPARATION_FWHM",
    "MIN_STAMPS_PER_WORKER",
    "PSF_MISMATCH",
    "PairFit",
    "PairBaseline",
    "fit_pair",
    "pair_scores",
    "baseline_name",
]

BASELINE_NAME = "psf-pair-fit-v1"
"""The default baseline: pixel-integrated Gaussians."""
PSF_PROFILES: tuple[str, ...] = ("gaussian", "moffat")
"""The PSF families `fit_pair` can fit."""
BASELINE_NAMES: dict[str, str] = {"gaussian": BASELINE_NAME, "moffat": "psf-pair-fit-moffat-v1"}
"""The baseline's name for each PSF family (stored with its thresholds)."""

FIT_RADIUS_ARCSEC = 3.0
"""Radius of the fitted region around the stamp centre (arcsec)."""
MAX_SEPARATION_ARCSEC = 2.75
"""A second component farther than this from the first is not a pair (score 0): the 2.5"
of the pair definition plus a margin for the fitted position's error."""
MIN_SEPARATION_FWHM = 1.0
"""Components closer than this many FWHM are not a resolved pair (score 0); see the module docstring."""
PSF_MISMATCH = 0.03
"""Fractional model error allowed near bright sources (see the module docstring)."""

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_MAD_TO_SIGMA = 1.4826
_MIN_OUTER_PIXELS = 16
#: A pair fit takes 10-40 ms and starting a process about a second: fewer stamps stay in-process.
MIN_STAMPS_PER_WORKER = 200
_LOCAL_RADIUS_FWHM = 4.0
_MAX_FIT_PIXELS = 64
_MIN_FWHM_PIXELS = 2.0
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class PairFit:
    """The result of `fit_pair` for one stamp.

    Attributes
    ----------
    score : float
        ``sqrt(chi2(one component) - chi2(two components))``, >= 0; 0 when the pair is
        implausible (see the module docstring). Larger means more pair-like.
    separation_arcsec : float
        Distance between the two fitted components (arcsec); NaN when no fit was possible.
    flux_ratio : float
        Fainter over brighter fitted flux (0-1 for two positive components); NaN when no fit
        was possible.
    """

    score: float
    separation_arcsec: float
    flux_ratio: float


_NO_FIT = PairFit(0.0, math.nan, math.nan)


# ============================================================================================
# One stamp
# ============================================================================================


def _check_scale(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BinarycatError(f"{what} must be a positive number, not {value!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise BinarycatError(f"{what} must be a positive number, not {value!r}.")
    return v


def _block_average(image: np.ndarray, k: int, cy: float, cx: float):
    """Mean of ``k x k`` blocks (NaN ignored); returns the image and the centre in block pixels.

    The blocks are laid out from an origin chosen so the image is trimmed evenly on both sides.
    Block pixel ``j`` is centred on original pixel ``origin + j k + (k - 1) / 2``.
    """
    ny, nx = image.shape
    my, mx = ny // k, nx // k
    oy, ox = (ny - my * k) // 2, (nx - mx * k) // 2
    blocks = image[oy:oy + my * k, ox:ox + mx * k].reshape(my, k, mx, k)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    out = np.full((my, mx), np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out, (cy - oy - (k - 1) / 2.0) / k, (cx - ox - (k - 1) / 2.0) / k


def _profile(grid: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """A unit-flux 1-D Gaussian integrated over unit pixels centred on ``grid``."""
    cdf = erf((grid[:, None] + np.array([-0.5, 0.5]) - centre) / (_SQRT2 * sigma))
    return 0.5 * (cdf[:, 1] - cdf[:, 0])


def _check_profile(profile) -> str:
    if profile not in PSF_PROFILES:
        raise BinarycatError(f"Unknown PSF profile {profile!r} for the baseline; choose one of "
                             f"{', '.join(PSF_PROFILES)}.")
    return profile


def baseline_name(profile: str = "gaussian") -> str:
    """The name of the baseline that fits ``profile`` PSFs (``BASELINE_NAMES[profile]``).

    Raises
    ------
    BinarycatError
        For a profile not in `PSF_PROFILES`.
    """
    return BASELINE_NAMES[_check_profile(profile)]


class _Gaussian:
    """Pixel-integrated circular Gaussians; one shape parameter, the log of the width sigma."""

    n_shape = 1

    def __init__(self, fwhm_pix: float):
        self.start = [math.log(max(fwhm_pix * _FWHM_TO_SIGMA, 0.3))]

    @staticmethod
    def _sigma(shape) -> float:
        return math.exp(min(max(shape[0], -3.0), 4.0))

    def at(self, ys, xs, yi, xi, x0: float, y0: float, shape) -> np.ndarray:
        s = self._sigma(shape)
        return _profile(ys, y0, s)[yi] * _profile(xs, x0, s)[xi]

    def image(self, shape_yx, x0: float, y0: float, shape) -> np.ndarray:
        s = self._sigma(shape)
        ys, xs = np.arange(shape_yx[0], dtype=float), np.arange(shape_yx[1], dtype=float)
        return np.outer(_profile(ys, y0, s), _profile(xs, x0, s))


class _Moffat:
    """Circular Moffats ``(1 + r**2 / alpha**2) ** -beta``, averaged over each pixel.

    Two shape parameters: the log of the Gaussian-equivalent width ``FWHM / 2.3548`` (so the
    start and limits are those of `_Gaussian`) and ``log(beta - 1)``, beta kept within
    [1.1, 51]; a large beta is all but a Gaussian, so this family contains the other. Pixels
    are averaged over ``o x o`` sub-pixels, ``o = ceil(4 / FWHM in pixels)`` (1 to 4): enough
    for HST's 1.6-pixel FWHM, and 1 (pixel centres) for Pan-STARRS.
    """

    n_shape = 2

    def __init__(self, fwhm_pix: float):
        self.start = [math.log(max(fwhm_pix * _FWHM_TO_SIGMA, 0.3)), math.log(_MOFFAT_START_BETA - 1.0)]
        o = int(min(4, max(1, math.ceil(4.0 / max(fwhm_pix, 1e-3)))))
        self.offsets = (np.arange(o) + 0.5) / o - 0.5

    @staticmethod
    def _alpha_beta(shape) -> tuple[float, float]:
        fwhm = math.exp(min(max(shape[0], -3.0), 4.0)) / _FWHM_TO_SIGMA
        beta = 1.0 + math.exp(min(max(shape[1], math.log(0.1)), math.log(50.0)))
        return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0)), beta

    def _values(self, dy: np.ndarray, dx: np.ndarray, shape) -> np.ndarray:
        alpha, beta = self._alpha_beta(shape)
        oy = self.offsets[:, None, None]
        ox = self.offsets[None, :, None]
        r2 = ((dy[None, None, :] + oy) ** 2 + (dx[None, None, :] + ox) ** 2) / alpha**2
        return (beta - 1.0) / (math.pi * alpha**2) * np.mean(np.power(1.0 + r2, -beta), axis=(0, 1))

    def at(self, ys, xs, yi, xi, x0: float, y0: float, shape) -> np.ndarray:
        return self._values(ys[yi] - y0, xs[xi] - x0, shape)

    def image(self, shape_yx, x0: float, y0: float, shape) -> np.ndarray:
        yy, xx = np.indices(shape_yx, dtype=float)
        return self._values(yy.ravel() - y0, xx.ravel() - x0, shape).reshape(shape_yx)


_MOFFAT_START_BETA = 3.0
_FAMILIES = {"gaussian": _Gaussian, "moffat": _Moffat}


class _Problem:
    """Selected pixels of one crop and the weighted linear algebra of the one- and two-star models.

    ``select`` picks the fitted pixels; both models of one comparison use the same pixels and
    weights, so their chi-squares can be subtracted. ``theta`` holds one (x, y) per star, then
    the family's shape parameters, shared by the stars.
    """

    def __init__(self, crop: np.ndarray, select: np.ndarray, weight: np.ndarray | float, family):
        self.family = family
        self.ys = np.arange(crop.shape[0], dtype=float)
        self.xs = np.arange(crop.shape[1], dtype=float)
        self.yi, self.xi = np.nonzero(select)
        self.data = crop[self.yi, self.xi]
        w = np.asarray(weight, dtype=float)
        self.weight = np.broadcast_to(w if w.ndim == 0 else w[self.yi, self.xi], self.data.shape)
        self.wdata = self.data * self.weight

    def design(self, theta: np.ndarray) -> np.ndarray:
        """Columns: one unit-flux star per (x, y) pair in ``theta``, then the background."""
        k = self.family.n_shape
        n = (len(theta) - k) // 2
        shape = theta[2 * n:]
        cols = np.empty((len(self.data), n + 1))
        for i in range(n):
            cols[:, i] = self.family.at(self.ys, self.xs, self.yi, self.xi, theta[2 * i], theta[2 * i + 1], shape)
        cols[:, n] = 1.0
        return cols

    def solve(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best linear coefficients (fluxes, background) for ``theta``, and the weighted residual."""
        a = self.design(theta)
        a *= self.weight[:, None]
        try:
            coef = np.linalg.solve(a.T @ a, a.T @ self.wdata)
        except np.linalg.LinAlgError:  # two components on top of each other
            coef = np.linalg.lstsq(a, self.wdata, rcond=None)[0]
        # A trial step of the optimiser can put two stars on one pixel and make ``coef`` infinite;
        # a fit that ends there scores 0 (see `fit_pair`), so numpy's warning tells the user nothing.
        with np.errstate(invalid="ignore", over="ignore"):
            return coef, self.wdata - a @ coef

    def fit(self, theta0: np.ndarray):
        """Least-squares fit from ``theta0``; returns (theta, linear coefficients, chi2)."""
        res = least_squares(lambda t: self.solve(t)[1], theta0, method="lm", xtol=1e-5,
                            ftol=1e-6, max_nfev=40 * (len(theta0) + 1))
        coef, resid = self.solve(res.x)
        return res.x, coef, float(resid @ resid)


def _model_image(shape, theta: np.ndarray, coef: np.ndarray, family) -> np.ndarray:
    """The fitted stars (without the background) on a whole crop."""
    n = (len(theta) - family.n_shape) // 2
    out = np.zeros(shape)
    for i in range(n):
        out += coef[i] * family.image(shape, theta[2 * i], theta[2 * i + 1], theta[2 * n:])
    return out


def _disc(shape, y0: float, x0: float, r: float) -> np.ndarray:
    yy, xx = np.ogrid[0:shape[0], 0:shape[1]]
    return (yy - y0) ** 2 + (xx - x0) ** 2 <= r * r


def _crop(image: np.ndarray, cy: float, cx: float, radius_pix: float):
    """The bounding box of the fit circle, the circle-and-finite mask, and the centre in the box."""
    ny, nx = image.shape
    y0, y1 = max(0, int(math.floor(cy - radius_pix))), min(ny, int(math.ceil(cy + radius_pix)) + 1)
    x0, x1 = max(0, int(math.floor(cx - radius_pix))), min(nx, int(math.ceil(cx + radius_pix)) + 1)
    crop = image[y0:y1, x0:x1]
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius_pix**2
    return crop, inside & np.isfinite(crop), cy - y0, cx - x0


def _outer_sigma(image: np.ndarray, cy: float, cx: float, radius_pix: float) -> tuple[float, float]:
    """Robust (median, 1.4826 MAD) of the finite pixels outside the fit circle."""
    yy, xx = np.ogrid[0:image.shape[0], 0:image.shape[1]]
    outer = ((yy - cy) ** 2 + (xx - cx) ** 2 > radius_pix**2) & np.isfinite(image)
    values = image[outer] if outer.sum() >= _MIN_OUTER_PIXELS else image[np.isfinite(image)]
    median = float(np.median(values))
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    if not (math.isfinite(sigma) and sigma > 0):
        sigma = float(np.std(values)) if values.size > 1 else 1.0
        sigma = sigma if math.isfinite(sigma) and sigma > 0 else 1.0
    return median, sigma


def fit_pair(image, pixel_scale_arcsec: float, fwhm_arcsec: float, profile: str = "gaussian") -> PairFit:
    """Fit one and two PSFs to the centre of a stamp; score the pair.

    Parameters
    ----------
    image : array_like
        2-D stamp centred on the source (background about 0; NaN pixels are ignored).
    pixel_scale_arcsec : float
        Pixel scale of ``image`` (arcsec/pixel).
    fwhm_arcsec : float
        The survey's PSF FWHM (arcsec), ``Survey.fwhm_arcsec``; it sets the starting width,
        the smoothing before the residual peak search and the smallest plausible separation.
    profile : {"gaussian", "moffat"}
        The PSF family fitted: pixel-integrated Gaussians (``psf-pair-fit-v1``), or Moffats
        whose power index beta is fitted too (``psf-pair-fit-moffat-v1``), for PSFs with
        wings. The stars of one fit share one width (and beta).

    Returns
    -------
    PairFit
        ``score`` (``sqrt(chi2_one - chi2_two)``, 0 for an implausible pair or a stamp with
        too few finite pixels), ``separation_arcsec`` and ``flux_ratio`` of the
        two-component fit (NaN when no fit was possible).

    Raises
    ------
    BinarycatError
        For an image that is not 2-D, a non-positive pixel scale or FWHM, or an unknown profile.
    """
    _check_profile(profile)
    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise BinarycatError(f"A stamp must be a 2-D image, not an array of shape {img.shape}.")
    scale = _check_scale(pixel_scale_arcsec, "pixel_scale_arcsec")
    fwhm = _check_scale(fwhm_arcsec, "fwhm_arcsec")
    cy, cx = (img.shape[0] - 1) / 2.0, (img.shape[1] - 1) / 2.0

    # Block-average when the fitted circle would be large and the PSF stays sampled.
    k = max(1, int(fwhm / scale / _MIN_FWHM_PIXELS))
    if 2.0 * FIT_RADIUS_ARCSEC / scale > _MAX_FIT_PIXELS and k > 1:
        k = min(k, int(math.ceil(2.0 * FIT_RADIUS_ARCSEC / scale / _MAX_FIT_PIXELS)))
        img, cy, cx = _block_average(img, k, cy, cx)
        scale *= k
    fwhm_pix = fwhm / scale
    psf_sigma = fwhm_pix * _FWHM_TO_SIGMA
    radius = FIT_RADIUS_ARCSEC / scale

    if not np.isfinite(img).any():
        return _NO_FIT
    background, sigma = _outer_sigma(img, cy, cx, radius)
    crop, mask, ccy, ccx = _crop(img, cy, cx, radius)
    if mask.sum() < 12:
        return _NO_FIT
    crop = np.where(mask, crop - background, 0.0)
    local = max(_LOCAL_RADIUS_FWHM * fwhm_pix, 3.0)

    # One component, started at the brightest smoothed pixel within one FWHM of the centre.
    smooth = ndimage.gaussian_filter(crop, max(psf_sigma, 0.5), mode="constant")
    near = _disc(crop.shape, ccy, ccx, max(fwhm_pix, 1.5)) & mask
    py, px = divmod(int(np.argmax(np.where(near, smooth, -np.inf))), crop.shape[1]) if near.any() \
        else (ccy, ccx)
    family = _FAMILIES[profile](fwhm_pix)
    theta0 = np.array([px, py, *family.start], dtype=float)
    theta1, coef1, _ = _Problem(crop, mask & _disc(crop.shape, py, px, local), 1.0 / sigma, family).fit(theta0)

    # The second component starts at the brightest peak of the smoothed residual.
    model1 = _model_image(crop.shape, theta1, coef1, family)
    resid = np.where(mask, crop - model1 - coef1[-1], 0.0)
    rs = ndimage.gaussian_filter(resid, max(psf_sigma, 0.5), mode="constant")
    peaks = (rs == ndimage.maximum_filter(rs, size=max(3, int(2 * fwhm_pix) | 1))) & mask
    peaks &= _disc(crop.shape, theta1[1], theta1[0], MAX_SEPARATION_ARCSEC / scale)  # not a field star's wing
    if not peaks.any():
        return _NO_FIT
    qy, qx = divmod(int(np.argmax(np.where(peaks, rs, -np.inf))), crop.shape[1])

    # Both models on the same pixels (near either component) with the same weights.
    select = mask & (_disc(crop.shape, theta1[1], theta1[0], local) | _disc(crop.shape, qy, qx, local))
    weight = 1.0 / (sigma * np.sqrt(1.0 + (PSF_MISMATCH * np.maximum(model1, 0.0) / sigma) ** 2))
    prob = _Problem(crop, select, weight, family)
    _, _, chi2_one = prob.fit(theta1)
    theta2, coef2, chi2_two = prob.fit(np.array([theta1[0], theta1[1], qx, qy, *theta1[2:]], dtype=float))
    if min(coef2[0], coef2[1]) <= 0:
        # The fit can collapse onto one star (a +/- dipole) when the single Gaussian sat between
        # two near-equal stars; retry with the first star mirrored about that centre.
        start = np.array([2 * theta1[0] - qx, 2 * theta1[1] - qy, qx, qy, *theta1[2:]], dtype=float)
        retry = prob.fit(start)
        if retry[2] < chi2_two:
            theta2, coef2, chi2_two = retry

    sep_pix = math.hypot(theta2[2] - theta2[0], theta2[3] - theta2[1])
    hi, lo = max(coef2[0], coef2[1]), min(coef2[0], coef2[1])
    ratio = float(lo / hi) if hi > 0 else math.nan
    delta = chi2_one - chi2_two
    score = math.sqrt(delta) if delta > 0 and math.isfinite(delta) else 0.0
    if not _plausible(theta2, coef2, fwhm_pix, scale):
        score = 0.0
    return PairFit(float(score), float(sep_pix * scale), ratio)


def _plausible(theta2: np.ndarray, coef2: np.ndarray, fwhm_pix: float, scale: float) -> bool:
    """Two positive fluxes, at least MIN_SEPARATION_FWHM and at most MAX_SEPARATION_ARCSEC apart."""
    sep_pix = math.hypot(theta2[2] - theta2[0], theta2[3] - theta2[1])
    return bool(min(coef2[0], coef2[1]) > 0 and sep_pix >= MIN_SEPARATION_FWHM * fwhm_pix
                and sep_pix * scale <= MAX_SEPARATION_ARCSEC)


def pair_scores(arrays: Sequence, pixel_scales, fwhms, profile: str = "gaussian",
                workers: int | None = None) -> np.ndarray:
    """`fit_pair` scores of many stamps.

    Parameters
    ----------
    arrays : sequence of 2-D array_like
        The stamps.
    pixel_scales, fwhms : float or sequence of float
        Pixel scale and PSF FWHM (arcsec) of each stamp, or one value for all.
    profile : {"gaussian", "moffat"}
        The PSF family fitted (see `fit_pair`).
    workers : int, optional
        Processes to fit in (None or 0: `binarycat.parallel.allowed_cores`); fewer than
        `MIN_STAMPS_PER_WORKER` stamps per process stay in this one. The scores do not depend on it.

    Returns
    -------
    numpy.ndarray
        float64, one score per stamp.

    Raises
    ------
    BinarycatError
        When the lengths differ, or for a bad stamp, scale, FWHM or profile (see `fit_pair`).
    """
    _check_profile(profile)
    arrays = list(arrays)
    n = len(arrays)
    scales = np.broadcast_to(np.asarray(pixel_scales, dtype=float), (n,)) if np.ndim(pixel_scales) == 0 \
        else np.asarray(pixel_scales, dtype=float)
    widths = np.broadcast_to(np.asarray(fwhms, dtype=float), (n,)) if np.ndim(fwhms) == 0 \
        else np.asarray(fwhms, dtype=float)
    if len(scales) != n or len(widths) != n:
        raise BinarycatError(
            f"pair_scores needs one pixel scale and one FWHM per stamp: got {n} stamps, "
            f"{len(scales)} pixel scales and {len(widths)} FWHMs.")
    jobs = [(a, float(s), float(w), profile) for a, s, w in zip(arrays, scales, widths)]
    n_workers = worker_count(workers, n, MIN_STAMPS_PER_WORKER)
    return np.array(map_chunks(_scores_of, jobs, n_workers), dtype=np.float64)


def _scores_of(jobs: list[tuple]) -> list[float]:
    return [fit_pair(a, s, w, profile).score for a, s, w, profile in jobs]


# ============================================================================================
# Thresholds
# ============================================================================================


def _survey_key(name) -> str:
    """Survey names as the catalogue stores them (canonical names; `model` does not import `ingest`)."""
    return str(name)


def _best_threshold(scores: np.ndarray, labels: np.ndarray, max_candidates: int = 1024) -> float:
    """The threshold t maximising macro-F1 of ``scores > t`` (the lowest such t on ties)."""
    values = np.unique(scores)
    if len(values) > max_candidates:
        values = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, max_candidates)))
    cuts = (values[:-1] + values[1:]) / 2.0
    below = values[0] - max(1.0, abs(values[0]))  # everything predicted a pair
    above = values[-1] + max(1.0, abs(values[-1]))  # nothing predicted a pair
    candidates = np.concatenate([[below], cuts, [above]])
    f1 = macro_f1_at_thresholds(scores, labels, candidates, inclusive=False)
    return float(candidates[int(np.argmax(f1))])


@dataclass
class PairBaseline:
    """Per-survey score thresholds: a stamp is a resolved pair when ``score > thresholds[survey]``.

    Attributes
    ----------
    thresholds : dict of str to float
        One threshold per survey, keyed by the registry's canonical survey name (or the name
        as given, for a survey the registry does not know).
    name : str
        Which baseline scored the stamps (a value of `BASELINE_NAMES`; default the Gaussian fit).
    """

    thresholds: dict[str, float] = field(default_factory=dict)
    name: str = BASELINE_NAME

    @classmethod
    def fit(cls, scores, labels, surveys, name: str = BASELINE_NAME) -> "PairBaseline":
        """Choose, for each survey, the threshold that maximises macro-F1 on the given stamps.

        Parameters
        ----------
        scores : array_like of float
            `fit_pair` scores (training and validation stamps, never test stamps).
        labels : array_like of int
            Truth labels, 0 or 1.
        surveys : sequence of str
            Survey name of each stamp (aliases are folded to the canonical name).
        name : str
            The baseline that gave the scores (`baseline_name`).

        Returns
        -------
        PairBaseline

        Raises
        ------
        BinarycatError
            When the lengths differ, there are no stamps, a score is not finite or a label
            is not 0 or 1.
        """
        scores = np.asarray(scores, dtype=float).ravel()
        labels = np.asarray(labels).ravel()
        keys = np.array([_survey_key(s) for s in surveys], dtype=object)
        if not (len(scores) == len(labels) == len(keys)):
            raise BinarycatError(
                f"PairBaseline.fit needs one label and one survey per score: got {len(scores)} "
                f"scores, {len(labels)} labels and {len(keys)} surveys.")
        if len(scores) == 0:
            raise BinarycatError("PairBaseline.fit needs at least one scored stamp.")
        if not np.isfinite(scores).all():
            raise BinarycatError("PairBaseline.fit got a score that is NaN or infinite.")
        if not np.isin(labels, (0, 1)).all():
            raise BinarycatError("PairBaseline.fit needs labels that are 0 or 1.")
        labels = labels.astype(int)
        thresholds = {}
        for key in sorted(set(keys)):
            sel = keys == key
            thresholds[key] = _best_threshold(scores[sel], labels[sel])
        return cls(thresholds, name)

    def predict(self, scores, surveys) -> np.ndarray:
        """0/1 labels: ``score > thresholds[survey]``.

        Parameters
        ----------
        scores : array_like of float
        surveys : sequence of str
            Survey name of each score.

        Returns
        -------
        numpy.ndarray of int8

        Raises
        ------
        BinarycatError
            For a survey with no threshold, or lengths that differ.
        """
        scores = np.asarray(scores, dtype=float).ravel()
        surveys = list(surveys)
        if len(surveys) != len(scores):
            raise BinarycatError(
                f"predict needs one survey per score: got {len(scores)} scores and {len(surveys)} surveys.")
        cut = np.empty(len(scores))
        cache: dict[str, float] = {}
        for i, s in enumerate(surveys):
            if s not in cache:
                key = _survey_key(s)
                if key not in self.thresholds:
                    known = ", ".join(sorted(self.thresholds)) or "none"
                    raise BinarycatError(
                        f"The {self.name} baseline has no threshold for survey {s!r}; "
                        f"it was fitted on: {known}.")
                cache[s] = self.thresholds[key]
            cut[i] = cache[s]
        return (scores > cut).astype(np.int8)

    def as_dict(self) -> dict:
        """A JSON-ready dict: ``{"baseline": name, "thresholds": {...}}``."""
        return {"baseline": self.name,
                "thresholds": {k: float(v) for k, v in sorted(self.thresholds.items())}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "PairBaseline":
        """Rebuild a baseline from `as_dict` output.

        Raises
        ------
        BinarycatError
            For a dict of another baseline, or thresholds that are not numbers.
        """
        if not isinstance(d, Mapping) or d.get("baseline") not in BASELINE_NAMES.values():
            got = d.get("baseline") if isinstance(d, Mapping) else type(d).__name__
            raise BinarycatError(f"Not a baseline of {', '.join(BASELINE_NAMES.values())} (got {got!r}).")
        name = d["baseline"]
        raw = d.get("thresholds")
        if not isinstance(raw, Mapping):
            raise BinarycatError(f"A {name} baseline needs a 'thresholds' mapping.")
        try:
            thresholds = {str(k): float(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise BinarycatError(f"The thresholds of a {name} baseline must be numbers.") from None
        return cls(thresholds, name)
