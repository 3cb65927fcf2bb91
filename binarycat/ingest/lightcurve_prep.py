"""CALNet preprocessing of one TESS 2-minute light curve (recipe ``"calnet-prep-v1"``).

``preprocess_lightcurve`` turns a sector's ``(time, flux, quality[, flux_err])`` into a
4,000-point curve in [0, 1] for the light-curve branch of CALNet, and keeps the cleaned points
for the periodogram branch (`binarycat.model.periodogram`). Each step is a public function:

1. **Good points** (`good_points`): ``QUALITY == 0`` and finite time and flux (and, when
   given, a finite positive ``flux_err``). The points are then put in time order.
2. **Segments** (`split_segments`): the curve is cut wherever two consecutive good points are
   more than ``max_gap_days`` = 0.75 d apart (the mid-sector data downlink, safe-mode gaps).
   Segments with fewer than ``min_segment`` = 2,000 good points (about 2.8 d at 2-min cadence)
   are dropped; if none is left, `LightCurveTooShortError` is raised.
3. **Brightest 1 % dropped** (`drop_brightest`), per segment: an eclipsing binary only ever
   gets *fainter* than its baseline, while cosmic rays, flares, scattered-light glints and
   momentum-dump spikes make it brighter, so the top 1 % of fluxes are cut blind before any
   fit. Each segment is then divided by its median flux, which removes the flux offsets that
   TESS orbits can have between them.
4. **Robust spline** (`robust_spline`), per segment: three rounds of a least-squares cubic
   B-spline fit with interior knots every ``knot_spacing_days`` = 0.02 d (28.8 min); after
   each fit, points further than 3 sigma from the robust (sigma-clipped) mean of the residuals
   are rejected and the next fit uses the rest. Rejection is recomputed from all points every
   round, so a point rejected against a poor early fit can come back.

   *Knot spacing, the trade-off.* The spline must follow an eclipse of an hour or two: if
   it cannot, the eclipse points sit far below the fit, are rejected as outliers, and the
   next round erases the eclipse altogether. A cubic spline resolves features a few knot
   intervals wide. Measured on 12.5-d segments at 1e-3 noise with smooth-contact eclipses
   1 % deep: knots every 0.02 d keep the full depth of 1-h and 2-h eclipses (99-101 %);
   0.03 d keeps 82 % of a 1-h eclipse, 0.05 d 32 %, and the 0.5 d spacing common in
   detrending erases both (0 %, three quarters of the in-eclipse points rejected);
   ``tests/test_lightcurve_prep.py`` checks the 2-h case both ways. Closer knots follow the
   noise more: with ~14 points per knot interval the spline keeps about a quarter of the
   white noise (rms 2.7e-4 of 1e-3; 3.8e-4 at 0.01 d), rings by ~10 % of a shallow eclipse's
   depth just outside it, and can follow a 30-min flare that survives step 3; for a 27-d
   sector that is still finer than the 9.7-min output sampling.

   Knots are placed on a uniform grid and dropped where fewer than 4 points lie between
   neighbours (inside gaps shorter than ``max_gap_days``, at segment ends), so every fit is
   well posed (Schoenberg-Whitney).
5. **Resampling and normalisation** (`resample_minmax`): the ``n_out`` = 4,000 output
   points are shared between the kept segments in proportion to their durations (largest
   remainder, at least 2 each); each segment's final spline is sampled on an evenly spaced
   grid from its first to its last inlier (never beyond the data of the last fit: a segment
   that starts inside an eclipse can lose its first points to the clipping, and a spline
   diverges past its data), and the segments are concatenated in time order: the gaps
   between segments are *removed*, not interpolated across, so the output is evenly spaced
   within a segment only (``PreparedLightCurve.time`` gives the sample times).
   The concatenation is min-max normalised to [0, 1] and stored as float32.

The periodogram input (``PreparedLightCurve.points_*``) is every point that survived steps
1-3 (good, in a kept segment, not among the brightest 1 %), divided by its segment's median,
with ``flux_err`` scaled alike (ones when no errors were given, i.e. equal weights). The
spline's 3-sigma rejection is *not* applied to it (``points_inlier`` says what it rejected):
the noise of a bright star is a tiny fraction of a deep eclipse, and no smooth spline follows
ingress and egress to within 3 sigma of it, so the clipping removes a share of the in-eclipse
points (~13 % for a 2-h, 20 % deep eclipse at 1e-3 noise) that is exactly the signal the
periodogram is for. The points above the baseline that clipping is meant for were already
cut by step 3. The spline itself still follows such an eclipse (full depth, overshoot ~3 %).

``describe()`` gives the recipe and its parameters as a JSON-ready dict to store with a model;
``PREPROCESSING_VERSION`` changes whenever a step changes what comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.stats import sigma_clipped_stats
from scipy.interpolate import BSpline, make_lsq_spline

from binarycat.errors import BinarycatError, LightCurveTooShortError

__all__ = [
    "PREPROCESSING_VERSION", "N_OUT", "MIN_SEGMENT", "MAX_GAP_DAYS", "DROP_FRACTION", "KNOT_SPACING_DAYS",
    "SPLINE_ROUNDS", "CLIP_SIGMA", "PreparedLightCurve", "describe", "good_points", "split_segments",
    "drop_brightest", "spline_knots", "robust_spline", "allocate_samples", "minmax_normalise",
    "resample_minmax", "preprocess_lightcurve", "prepare_many",
]

PREPROCESSING_VERSION = "calnet-prep-v1"
N_OUT = 4000
MIN_SEGMENT = 2000
MAX_GAP_DAYS = 0.75
DROP_FRACTION = 0.01
KNOT_SPACING_DAYS = 0.02
SPLINE_ROUNDS = 3
CLIP_SIGMA = 3.0
SPLINE_DEGREE = 3


def describe() -> dict:
    """The preprocessing recipe and its parameters, JSON-serialisable, for storing with a model.

    Returns
    -------
    dict
        ``version`` (`PREPROCESSING_VERSION`), one entry per parameter, and ``recipe``: a short
        text version of the module docstring.
    """
    return {
        "version": PREPROCESSING_VERSION,
        "quality": "QUALITY == 0 and finite time, flux (and positive finite flux_err when given)",
        "max_gap_days": MAX_GAP_DAYS,
        "min_segment": MIN_SEGMENT,
        "drop_brightest_fraction": DROP_FRACTION,
        "segment_normalisation": "divide by segment median",
        "spline": {"degree": SPLINE_DEGREE, "knot_spacing_days": KNOT_SPACING_DAYS, "rounds": SPLINE_ROUNDS,
                   "clip_sigma": CLIP_SIGMA, "centre": "sigma-clipped mean of residuals"},
        "n_out": N_OUT,
        "resampling": "samples shared by segment duration, even grid per segment, gaps removed",
        "normalisation": "min-max to [0, 1], float32",
        "recipe": ("quality mask; split at gaps > max_gap_days; keep segments >= min_segment points; "
                   "drop brightest fraction per segment; divide by segment median; rounds of cubic "
                   "LSQ spline with clip_sigma rejection about a robust mean; resample to n_out; min-max"),
    }


@dataclass
class PreparedLightCurve:
    """One preprocessed light curve.

    Attributes
    ----------
    flux : numpy.ndarray
        float32, shape ``(n_out,)``, in [0, 1]: the input of CALNet's light-curve branch.
    time : numpy.ndarray
        float64, shape ``(n_out,)``: the time of each sample (days, as given).
    n_good : int
        Points that passed `good_points`.
    segments : list of tuple of float
        ``(t_start, t_end)`` of each kept segment, in time order.
    points_time, points_flux, points_flux_err : numpy.ndarray
        float64: the cleaned points for the periodogram (see the module docstring).
    points_inlier : numpy.ndarray of bool
        Which of those points the last spline round kept (within ``sigma`` of the fit).
    flux_range : tuple of float
        ``(min, max)`` of the resampled curve before the min-max step, in units of the segment
        median: how deep the curve dips and how high it rises, which the [0, 1] curve no
        longer says (a 0.5 % transit and a 30 % eclipse look alike after it).
    """

    flux: np.ndarray
    time: np.ndarray
    n_good: int
    segments: list = field(default_factory=list)
    points_time: np.ndarray = None
    points_flux: np.ndarray = None
    points_flux_err: np.ndarray = None
    points_inlier: np.ndarray = None
    flux_range: tuple = (0.0, 1.0)

    @property
    def periodogram_input(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t, y, dy)`` for `binarycat.model.periodogram.calnet_periodogram`."""
        return self.points_time, self.points_flux, self.points_flux_err


def good_points(time, flux, quality=None) -> np.ndarray:
    """Mask of the usable points: ``quality == 0`` and finite ``time`` and ``flux``.

    Parameters
    ----------
    time, flux : array_like
        One value per cadence.
    quality : array_like of int, optional
        The TESS ``QUALITY`` bit field; ``None`` means every point is flagged good.

    Returns
    -------
    numpy.ndarray of bool
        True where the point can be used.
    """
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    if time.shape != flux.shape or time.ndim != 1:
        raise ValueError(f"time and flux must be 1-d and of one length, got {time.shape} and {flux.shape}")
    mask = np.isfinite(time) & np.isfinite(flux)
    if quality is not None:
        quality = np.asarray(quality)
        if quality.shape != time.shape:
            raise ValueError(f"quality has shape {quality.shape}, time has {time.shape}")
        mask &= quality == 0
    return mask


def split_segments(time, max_gap_days: float = MAX_GAP_DAYS) -> list[slice]:
    """Cut a sorted time series wherever consecutive points are more than ``max_gap_days`` apart.

    Parameters
    ----------
    time : array_like
        Sorted (non-decreasing) times in days.
    max_gap_days : float
        A step larger than this starts a new segment; a step exactly equal does not.

    Returns
    -------
    list of slice
        One slice into ``time`` per segment, in order; empty for an empty input.
    """
    time = np.asarray(time, float)
    if time.size == 0:
        return []
    step = np.diff(time)
    if np.any(step < 0):
        raise ValueError("time must be sorted to be split into segments")
    cuts = np.flatnonzero(step > max_gap_days) + 1
    edges = [0, *cuts.tolist(), time.size]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def drop_brightest(flux, fraction: float = DROP_FRACTION) -> np.ndarray:
    """Mask that removes the brightest ``fraction`` of the points.

    An eclipsing binary only dims below its baseline; what lies above it (cosmic rays, flares,
    glints, momentum-dump spikes) is never signal, so the top of the flux distribution is cut
    before any fit can be pulled up by it.

    Parameters
    ----------
    flux : array_like
        Finite fluxes.
    fraction : float
        Exactly ``floor(fraction * n)`` points are removed: the largest values, ties broken
        in favour of removing the later point.

    Returns
    -------
    numpy.ndarray of bool
        True for the points kept.
    """
    flux = np.asarray(flux, float)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    n_drop = int(np.floor(fraction * flux.size + 1e-9))
    keep = np.ones(flux.size, dtype=bool)
    if n_drop:
        keep[np.argsort(flux, kind="stable")[flux.size - n_drop:]] = False
    return keep


def spline_knots(time, spacing_days: float = KNOT_SPACING_DAYS, min_points: int = SPLINE_DEGREE + 1) -> np.ndarray:
    """Interior knots every ``spacing_days``, keeping only those with data on both sides.

    Candidate knots lie on an even grid from ``time[0]``; one is kept when at least
    ``min_points`` points fall between it and the previous kept knot (or the start) and at
    least ``min_points`` after it, which makes the least-squares spline well posed
    (Schoenberg-Whitney) across gaps and at the ends.

    Parameters
    ----------
    time : array_like
        Sorted times of the points to fit.
    spacing_days : float
        Spacing of the candidate knots.
    min_points : int
        Fewest points per knot interval (degree + 1 for a cubic is 4).

    Returns
    -------
    numpy.ndarray
        Interior knots, strictly increasing and strictly inside ``(time[0], time[-1])``.
    """
    time = np.asarray(time, float)
    n = time.size
    if n < 2 * min_points:
        return np.empty(0)
    cand = np.arange(time[0] + spacing_days, time[-1], spacing_days)
    # points strictly left of each candidate; the kept knot is then exactly between samples
    left = np.searchsorted(time, cand, side="left")
    knots, last = [], 0
    for c, i in zip(cand, left):
        if i - last >= min_points and n - i >= min_points:
            knots.append(c)
            last = i
    return np.asarray(knots)


def _fit(time, flux, spacing_days: float) -> BSpline:
    k = SPLINE_DEGREE
    inner = spline_knots(time, spacing_days, k + 1)
    t = np.r_[[time[0]] * (k + 1), inner, [time[-1]] * (k + 1)]
    try:  # banded normal equations: ~15x faster than the QR default of scipy >= 1.15, same fit here
        return make_lsq_spline(time, flux, t, k=k, method="norm-eq")
    except TypeError:  # scipy < 1.15 has no ``method`` and always uses the normal equations
        return make_lsq_spline(time, flux, t, k=k)


def robust_spline(time, flux, *, rounds: int = SPLINE_ROUNDS, sigma: float = CLIP_SIGMA,
                  knot_spacing_days: float = KNOT_SPACING_DAYS) -> tuple[BSpline, np.ndarray]:
    """Cubic least-squares spline, refitted ``rounds`` times with outlier rejection.

    Each round fits the points currently kept, computes the residuals of *all* points, finds
    their robust mean and standard deviation (`astropy.stats.sigma_clipped_stats` at
    ``sigma``) and keeps the points within ``sigma`` standard deviations of that mean.

    Parameters
    ----------
    time : array_like
        Sorted times (days) of one segment, at least 8 points.
    flux : array_like
        Fluxes at ``time``.
    rounds : int
        Number of fits (3 in CALNet).
    sigma : float
        Rejection threshold in standard deviations.
    knot_spacing_days : float
        Interior knot spacing (see the module docstring for the trade-off).

    Returns
    -------
    spline : scipy.interpolate.BSpline
        The last fit; call it with times to evaluate.
    kept : numpy.ndarray of bool
        The points within ``sigma`` of the last fit (the rejection after the last round).
    """
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if time.size < 2 * (SPLINE_DEGREE + 1):
        raise ValueError(f"a spline needs at least {2 * (SPLINE_DEGREE + 1)} points, got {time.size}")
    kept = np.ones(time.size, dtype=bool)
    for _ in range(rounds):
        spline = _fit(time[kept], flux[kept], knot_spacing_days)
        resid = flux - spline(time)
        mean, _, std = sigma_clipped_stats(resid, sigma=sigma, maxiters=5)
        new = np.abs(resid - mean) <= sigma * std if std > 0 else np.ones_like(kept)
        if new.sum() < 2 * (SPLINE_DEGREE + 1):  # pathological data: keep the last usable set
            break
        kept = new
    return spline, kept


def allocate_samples(durations, n_out: int = N_OUT, minimum: int = 2) -> np.ndarray:
    """Share ``n_out`` samples between segments in proportion to their durations.

    Largest-remainder rounding, so the counts add up to exactly ``n_out``; every segment gets
    at least ``minimum`` (taken from the segments with the most).

    Parameters
    ----------
    durations : array_like
        Non-negative durations, one per segment.
    n_out : int
        Total number of samples.
    minimum : int
        Fewest samples per segment.

    Returns
    -------
    numpy.ndarray of int
        Samples per segment.
    """
    d = np.asarray(durations, float)
    if d.size == 0:
        return np.zeros(0, int)
    if n_out < minimum * d.size:
        raise ValueError(f"{n_out} samples cannot give {d.size} segments {minimum} each")
    share = n_out * d / d.sum() if d.sum() > 0 else np.full(d.size, n_out / d.size)
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n_out - counts.sum()]] += 1
    while counts.min() < minimum:
        counts[counts.argmin()] += 1
        counts[counts.argmax()] -= 1
    return counts


def minmax_normalise(x) -> np.ndarray:
    """``(x - min) / (max - min)``: values in [0, 1]; a constant array becomes zeros.

    Parameters
    ----------
    x : array_like
        Finite values.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``x``.
    """
    x = np.asarray(x, float)
    lo, hi = x.min(), x.max()
    return np.zeros_like(x) if hi <= lo else (x - lo) / (hi - lo)


def resample_minmax(curves, spans, n_out: int = N_OUT) -> tuple[np.ndarray, np.ndarray]:
    """Sample each segment's curve on its own even grid, concatenate, min-max normalise.

    Parameters
    ----------
    curves : sequence of callable
        One per segment (e.g. the spline of `robust_spline`), taking an array of times.
    spans : sequence of (float, float)
        ``(t_start, t_end)`` per segment, in time order; the grid includes both ends.
    n_out : int
        Total number of samples, shared by `allocate_samples`.

    Returns
    -------
    time : numpy.ndarray
        float64 ``(n_out,)`` sample times.
    flux : numpy.ndarray
        float32 ``(n_out,)`` in [0, 1].
    """
    if len(curves) != len(spans) or not curves:
        raise ValueError("need one span per curve and at least one curve")
    grids = _grids(spans, n_out)
    values = np.concatenate([np.asarray(f(g), float) for f, g in zip(curves, grids)])
    return np.concatenate(grids), minmax_normalise(values).astype(np.float32)


def _grids(spans, n_out: int) -> list[np.ndarray]:
    counts = allocate_samples([b - a for a, b in spans], n_out)
    return [np.linspace(a, b, n) for (a, b), n in zip(spans, counts)]


def preprocess_lightcurve(time, flux, quality=None, flux_err=None, *, n_out: int = N_OUT,
                          min_segment: int = MIN_SEGMENT, max_gap_days: float = MAX_GAP_DAYS,
                          knot_spacing_days: float = KNOT_SPACING_DAYS, drop_fraction: float = DROP_FRACTION,
                          rounds: int = SPLINE_ROUNDS, sigma: float = CLIP_SIGMA) -> PreparedLightCurve:
    """The whole CALNet recipe (module docstring) for one light curve.

    Parameters
    ----------
    time, flux : array_like
        Times (days, e.g. BTJD) and fluxes (e.g. PDCSAP) of one sector.
    quality : array_like of int, optional
        TESS ``QUALITY``; ``None`` treats every point as good.
    flux_err : array_like, optional
        Flux uncertainties; they become the periodogram weights. ``None`` gives equal weights.
    n_out, min_segment, max_gap_days, knot_spacing_days, drop_fraction, rounds, sigma
        The recipe's parameters; the defaults are ``"calnet-prep-v1"``.

    Returns
    -------
    PreparedLightCurve

    Raises
    ------
    LightCurveTooShortError
        When no segment has ``min_segment`` good points.
    """
    time, flux = np.asarray(time, float), np.asarray(flux, float)
    good = good_points(time, flux, quality)
    if flux_err is not None:
        flux_err = np.asarray(flux_err, float)
        if flux_err.shape != time.shape:
            raise ValueError(f"flux_err has shape {flux_err.shape}, time has {time.shape}")
        good &= np.isfinite(flux_err) & (flux_err > 0)
    else:
        flux_err = np.ones_like(flux)
    order = np.flatnonzero(good)
    order = order[np.argsort(time[order], kind="stable")]
    t, f, e = time[order], flux[order], flux_err[order]
    segments = split_segments(t, max_gap_days)
    lengths = [s.stop - s.start for s in segments]
    kept = [s for s in segments if s.stop - s.start >= min_segment]
    if not kept:
        raise LightCurveTooShortError(max(lengths, default=0), min_segment, max_gap_days)

    splines, spans, pts = [], [], []
    for s in kept:
        ts, fs, es = t[s], f[s], e[s]
        keep = drop_brightest(fs, drop_fraction)
        ts, fs, es = ts[keep], fs[keep], es[keep]
        scale = np.median(fs)
        if not scale > 0:
            scale = 1.0  # a zero or negative median (background-subtracted faint star): no division
        fs, es = fs / scale, es / scale
        spline, inliers = robust_spline(ts, fs, rounds=rounds, sigma=sigma, knot_spacing_days=knot_spacing_days)
        ti = ts[inliers]
        splines.append(spline)
        # sample only where the last fit had data: a segment that starts or ends inside an
        # eclipse can lose its edge points to the clipping, and a spline is wild beyond its data
        spans.append((float(max(ti[0], spline.t[0])), float(min(ti[-1], spline.t[-1]))))
        pts.append((ts, fs, es, inliers))
    grid, values = resample_minmax(splines, spans, n_out)
    raw = np.concatenate([np.asarray(f(g), float) for f, g in zip(splines, _grids(spans, n_out))])
    return PreparedLightCurve(
        flux=values, time=grid, n_good=int(good.sum()), segments=spans,
        flux_range=(float(raw.min()), float(raw.max())),
        points_time=np.concatenate([p[0] for p in pts]),
        points_flux=np.concatenate([p[1] for p in pts]),
        points_flux_err=np.concatenate([p[2] for p in pts]),
        points_inlier=np.concatenate([p[3] for p in pts]),
    )


def prepare_many(items, **kwargs) -> tuple[np.ndarray, list, dict]:
    """`preprocess_lightcurve` over many light curves, collecting the ones that fail.

    Parameters
    ----------
    items : iterable of tuple
        ``(time, flux, quality, flux_err)`` per light curve (``quality``/``flux_err`` may be None).
    **kwargs
        Passed on to `preprocess_lightcurve`.

    Returns
    -------
    lc : numpy.ndarray
        float32 ``(n_ok, n_out)``: the prepared curves of the items that succeeded, in order.
    inputs : list of tuple
        ``(t, y, dy)`` periodogram input for the same items.
    failures : dict
        Index of each item that failed -> the one-sentence reason (a `BinarycatError`).
        The rows of ``lc`` are the items ``[i for i in range(len(items)) if i not in failures]``.
    """
    rows, inputs, failures = [], [], {}
    for i, (time, flux, quality, flux_err) in enumerate(items):
        try:
            p = preprocess_lightcurve(time, flux, quality, flux_err, **kwargs)
        except BinarycatError as exc:
            failures[i] = str(exc)
            continue
        rows.append(p.flux)
        inputs.append(p.periodogram_input)
    n_out = kwargs.get("n_out", N_OUT)
    lc = np.stack(rows) if rows else np.empty((0, n_out), np.float32)
    return lc, inputs, failures
