"""A deterministic simulator of TESS 2-minute SPOC light curves: eclipsing binaries and look-alikes.

Every simulated target gets one sector of 2-minute photometry written as a SPOC-layout FITS
file (`binarycat.ingest.tess_fits.write_spoc_lightcurve`), with the cadence, the mid-sector
downlink gap, momentum dumps, quality flags, NaN fluxes, photon noise and residual
systematics of real PDCSAP light curves. A fraction ``eb_fraction`` of the targets are
eclipsing binaries (label 1); the others are variables and non-variables that a detector
must not call EBs (label 0).

Kinds
-----
Eclipsing binaries (label 1), in the proportions EA : EB : EW = 0.50 : 0.15 : 0.35:

``EA`` (detached, Algol)
    Two limb-darkened spheres (linear law, u = 0.5) on a Keplerian orbit (`binary_eclipse_loss`),
    flat outside eclipse. Period log-uniform 0.5-15 d (about a fifth above 7 d, which show only
    2-4 primary eclipses in a sector). Sum of the radii (in units of the semi-major axis)
    ``0.2 (P / 1 d)**-0.47`` times a log-normal scatter of 0.3 dex, clipped to 0.035-0.3, so
    eclipses last 1-10 % of the period; radius ratio uniform 0.35-1; surface-brightness ratio
    uniform 0.3-1 (75 %) or log-uniform 0.01-0.3 (25 %, nearly invisible secondaries); impact
    parameter at primary conjunction uniform 0-0.95 of the sum of the radii. Orbits with
    P > 2 d are eccentric with probability 0.4 (e uniform 0.02-0.5, capped so the stars never
    touch; argument of periastron uniform), which moves the secondary eclipse off phase 0.5
    and changes its width. Third light (contamination) uniform 0-0.5 of the total.
``EB`` (beta Lyrae)
    The same eclipse model with large stars (sum of radii uniform 0.45-0.7, radius ratio
    0.6-1.3, surface-brightness ratio 0.15-0.6, impact parameter 0-0.7) plus ellipsoidal
    variation (semi-amplitude 3-15 % of the flux, minima at the conjunctions) and a weak
    reflection effect (0-3 %). Period log-uniform 0.4-5 d; third light 0-0.3. The secondary
    minimum is at most 0.8 of the primary: the minima are clearly unequal.
``EW`` (W UMa contact)
    A Fourier-like magnitude curve with minima at phases 0 and 0.5 (`contact_binary_curve`):
    ``m = A s(phase)`` with ``s = ((1 + cos 4 pi phase) / 2)**p (1 - (1 - q)(1 - cos 2 pi
    phase) / 2)``, shape ``p`` uniform 1-2 (narrow minima, broad maxima), secondary-to-primary
    depth ratio ``q`` uniform 0.8-1 (near-equal minima), and an O'Connell term of at most
    5 % of ``A``. Period log-normal around 0.37 d (0.15 dex), clipped to 0.22-1 d; amplitude
    ``A`` log-uniform 0.05-0.8 mag.

Look-alikes (label 0), by default ``spots`` 0.30, ``dsct`` 0.10, ``rrlyr`` 0.10, ``transit``
0.20, ``systematics`` 0.15, ``quiet`` 0.15 (``lookalike_weights`` changes this; the key
``pulsator`` splits its weight evenly between ``dsct`` and ``rrlyr``):

``spots``
    Rotational modulation of one (60 %) or two (40 %) spots (`spot_curve`): each spot's flux
    deficit is its foreshortened, limb-darkened visibility on a star of inclination 20-90 deg
    (random orientation), latitude uniform +-60 deg, with an amplitude growing and decaying
    as a Gaussian in time (width 6-30 d, peak anywhere from 10 d before to 10 d after the
    sector) so the curve never repeats exactly. Period log-uniform 0.3-20 d; the second spot
    rotates up to 3 % faster or slower and sits at a random longitude, which gives double
    dips. Peak amplitude log-uniform 0.1-8 %.
``dsct`` (delta Scuti)
    2-6 sinusoidal modes with frequencies log-uniform 4-50 c/d (P 0.02-0.25 d), the dominant
    amplitude log-uniform 0.5-50 mmag and the others 5-70 % of it.
``rrlyr`` (RR Lyrae)
    RRab (70 %): P uniform 0.45-0.9 d, amplitude 0.3-1.2 mag, a fast rise over 12-25 % of the
    cycle; RRc (30 %): P 0.3-0.45 d, amplitude 0.2-0.5 mag, rise over 30-42 % of the cycle
    (`rr_lyrae_curve`, an asymmetric triangle wave smoothed to 10 harmonics). Third light 0-0.5.
``transit``
    A planet (`transit_loss`): depth log-uniform 0.05-2 %, total duration uniform 1-6 h but at
    most 12 % of the period, impact parameter 0-0.85, period log-uniform 0.5-15 d, no
    secondary eclipse.
``systematics``
    Red noise (AR(1), 0.05-0.5 %, time scale 0.05-2 d), plus with probability 0.7 an
    exponential ramp after the mid-sector gap (0.1-2 %, 0.1-1 d) and with probability 0.6 1-3
    flux jumps (0.05-0.5 %).
``quiet``
    Nothing but the noise and the mild residual systematics that every curve gets.

Cadences, gap, flags and noise
------------------------------
The cadence grid depends on the sector only (`sector_layout`), as in real data every target of
a sector shares it: it starts at BTJD ``1325.29 + 27.4 (sector - 1)`` (plus up to 0.2 d) with
two orbits of 12.6-13.4 d each separated by a downlink gap of 0.9-1.3 d, in all 18,600-20,200
rows at `CADENCE_DAYS`. **The gap cadences are kept as rows** (``CADENCENO`` runs on through
the gap, as in SPOC files) with ``TIME`` and ``PDCSAP_FLUX`` NaN and ``QUALITY`` 0, so only a
reader that drops non-finite time and flux sees the gap right. Momentum dumps come every
2.5-3.2 d in each orbit: 1-2 cadences flagged ``QUALITY`` 32 and a few neighbouring cadences
of NaN flux (up to 3 on each side). Each target further gets isolated flags 1024
(CollateralCosmic, about 6 a sector), 512 (ImpulsiveOutlier, about 2, with a 5-30 sigma
outlier), sometimes (30 %) one run of 5-60 cadences flagged 128 (ManualExclude), and about 2
unflagged NaN fluxes.

``PDCSAP_FLUX`` is in e-/s: ``15000 * 10**(-0.4 (Tmag - 10))`` times a calibration factor
uniform 0.95-1.05, times the astrophysical model, times ``1 + systematics``, plus Gaussian
noise of ``sqrt((F + B) t) / t`` (photon noise of the star, ``F``, and of background and read
noise, ``B = 1000`` e-/s, over an effective exposure ``t = 96`` s) and a floor of 20 ppm
hr^0.5 (`noise_per_point`): about 350 ppm a point (64 ppm hr^0.5) at Tmag 8, 860 ppm at
Tmag 10, 1 % at Tmag 14 and 5.5 % at Tmag 16. ``PDCSAP_FLUX_ERR`` is that sigma. Every curve
has mild residual systematics (AR(1) red noise of 20-200 ppm on 0.2-2 d, a linear drift of up
to 50 ppm/d per orbit, offsets of ~30 ppm at momentum dumps); 30 % also have scattered-light
ramps at the start of each orbit (0.03-0.5 %, decaying over 0.1-0.6 d, brightening in 75 %).

Truth and the detectability rule
--------------------------------
``lightcurve_truth.csv`` has one row per curve: ``tic_id, sector, source_id, ra, dec, tessmag,
label, kind, period_days, primary_depth, secondary_depth, file`` and further ``epoch_btjd,
secondary_phase, amplitude, noise_ppm``. ``label`` is 1 exactly for EA, EB and EW.
``period_days`` is the orbital (EB kinds, transits), rotation (spots, first spot) or dominant
pulsation period, 0.0 for systematics and quiet stars; ``epoch_btjd`` the time of a primary
minimum or mid-transit (0.0 for other kinds); depths are fractional flux drops of the noise-free
model at the primary and secondary minima relative to its maximum (the out-of-eclipse level
for EA and transits), 0.0 where there is none; ``secondary_phase`` the phase of the secondary
minimum (EB kinds); ``amplitude`` the peak-to-peak fractional range of the noise-free
astrophysical model; ``noise_ppm`` the white noise per point. Missing values are 0.0, not NaN.

Every simulated EB is a *visibly eclipsing* binary, like the known EBs CALNet was trained on.
With ``sigma_30`` the white noise per 30-minute bin (``noise_per_point / sqrt(15)``)::

    primary_depth >= 5 sigma_30
    the secondary is seen  iff  secondary_depth >= 3 sigma_30
    if the secondary is not seen: primary_depth >= 0.05         (deeper than any planet here)
    EA only: at least 2 seen eclipses fall on cadences with data, at least 1 of them primary

The primary is always the deeper minimum. EB parameters are redrawn until the rule holds
(`is_detectable`); it holds for every EB that `simulate_lightcurves` makes (the truth dicts
say ``detectable = True``). Transits obey no such rule:
a shallow transit on a faint star may be invisible, which is what real transit hosts look like.
Targets fainter than Tmag 17 are refused (no EB there could be seen).

Randomness
----------
Each curve has its own stream ``SeedSequence([seed, 3, tic_id, sector])``, so adding,
removing or reordering targets never changes another target's curve (as long as the targets
carry their ``tic_id``; fake ids follow the row order), and the same seed gives
identical truth and byte-identical FITS files. The draws for a target are always made in the
same order (a uniform for its magnitude, a uniform for EB-or-not, a uniform for the kind, then
the kind's parameters), so changing ``eb_fraction`` changes which targets are EBs, not how
the others look.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> lc, truth = simulate_lightcurve("EA", rng=rng, tic_id=1, sector=1, ra=83.8, dec=-5.4,
...                                 tessmag=10.0)
>>> truth["label"], lc.n_points > 18000
(1, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy.signal import lfilter

from binarycat.errors import BinarycatError
from binarycat.ingest.simulate import band_magnitude
from binarycat.ingest.tess_fits import CADENCE_DAYS, TessLightCurve, spoc_filename, write_spoc_lightcurve

__all__ = [
    "LightCurveSimulation",
    "field_targets",
    "SectorLayout",
    "simulate_lightcurve",
    "simulate_lightcurves",
    "select_tess_targets",
    "sector_layout",
    "noise_per_point",
    "is_detectable",
    "binary_eclipse_loss",
    "contact_binary_curve",
    "spot_curve",
    "rr_lyrae_curve",
    "transit_loss",
    "read_lightcurve_truth",
    "tessmag_from_r",
    "KINDS",
    "EB_KINDS",
    "LOOKALIKE_KINDS",
    "EB_KIND_WEIGHTS",
    "DEFAULT_LOOKALIKE_WEIGHTS",
    "TRUTH_FILENAME",
]

EB_KINDS: tuple[str, ...] = ("EA", "EB", "EW")
LOOKALIKE_KINDS: tuple[str, ...] = ("spots", "dsct", "rrlyr", "transit", "systematics", "quiet")
KINDS: tuple[str, ...] = EB_KINDS + LOOKALIKE_KINDS
EB_KIND_WEIGHTS: dict[str, float] = {"EA": 0.50, "EB": 0.15, "EW": 0.35}
DEFAULT_LOOKALIKE_WEIGHTS: dict[str, float] = {
    "spots": 0.30, "dsct": 0.10, "rrlyr": 0.10, "transit": 0.20, "systematics": 0.15, "quiet": 0.15,
}
TRUTH_FILENAME = "lightcurve_truth.csv"
TRUTH_COLUMNS = (
    "tic_id", "sector", "source_id", "ra", "dec", "tessmag", "label", "kind", "period_days",
    "primary_depth", "secondary_depth", "file", "epoch_btjd", "secondary_phase", "amplitude",
    "noise_ppm",
)

# --- sector layout -------------------------------------------------------------------------
_SECTOR1_START_BTJD = 1325.29
_SECTOR_STEP_DAYS = 27.4
_ORBIT_DAYS = (12.6, 13.4)
_GAP_DAYS = (0.9, 1.3)
_DUMP_INTERVAL_DAYS = (2.5, 3.2)
_STREAM_SECTOR = 0x5EC7
_STREAM_CURVE = 3

# --- photometry ----------------------------------------------------------------------------
_FLUX_T10 = 15000.0  # e-/s at Tmag 10
_EXPOSURE_S = 96.0  # 120 s cadence x 0.8 (onboard cosmic-ray mitigation)
_BACKGROUND_E_S = 1000.0  # background + read noise in the aperture, e-/s
_FLOOR_PPM_HR = 20.0
_POINTS_PER_30MIN = 15
_MAX_TESSMAG = 17.0
_MIN_TESSMAG = -2.0

# --- detectability -------------------------------------------------------------------------
_PRIMARY_SIGMA = 5.0
_SECONDARY_SIGMA = 3.0
_NO_SECONDARY_MIN_DEPTH = 0.05
_MAX_TRIES = 400

_LIMB_U = 0.5
_N_ANNULI = 6
_FLUX_CAL_RANGE = (0.95, 1.05)


class _Fixed(dict):
    """User-fixed parameters: ``pick(name, drawn)`` returns the fixed value or the draw."""

    def pick(self, name, drawn):
        return self[name] if name in self else drawn


# ============================================================================================
# Sector layout: cadences, gap, momentum dumps
# ============================================================================================


@dataclass(frozen=True)
class SectorLayout:
    """The cadence grid of one sector, shared by every target observed in it.

    Attributes
    ----------
    sector : int
    grid : ndarray of float64
        BTJD of every row, uniformly spaced by `CADENCE_DAYS`, *including* the gap rows
        (the models are evaluated on it; `time` is what the file holds).
    time : ndarray of float64
        ``grid`` with NaN at the gap rows, as written to ``TIME``.
    in_gap : ndarray of bool
        The downlink-gap rows.
    dump_flag : ndarray of bool
        Cadences flagged ``QUALITY`` 32 (momentum dumps).
    dump_nan : ndarray of bool
        Cadences whose flux is NaN around a dump (including the flagged ones).
    orbit_starts : tuple of int
        First row of each orbit.
    dump_rows : tuple of int
        First flagged row of each dump.
    """

    sector: int
    grid: np.ndarray
    time: np.ndarray
    in_gap: np.ndarray
    dump_flag: np.ndarray
    dump_nan: np.ndarray
    orbit_starts: tuple[int, ...]
    dump_rows: tuple[int, ...]

    @property
    def n_rows(self) -> int:
        return int(self.grid.size)

    @property
    def has_data(self) -> np.ndarray:
        """Rows that carry a flux in every target (not in the gap, not NaN at a dump)."""
        return ~(self.in_gap | self.dump_nan)


@lru_cache(maxsize=64)
def sector_layout(sector: int) -> SectorLayout:
    """The cadence grid, mid-sector gap and momentum dumps of ``sector`` (see module docstring).

    It depends on ``sector`` only, so every target of a sector shares it, as in real SPOC
    data. The arrays are read-only.
    """
    sector = int(sector)
    rng = np.random.default_rng(np.random.SeedSequence([_STREAM_SECTOR, sector]))
    start = _SECTOR1_START_BTJD + _SECTOR_STEP_DAYS * (sector - 1) + rng.uniform(0.0, 0.2)
    orbit1, orbit2 = rng.uniform(*_ORBIT_DAYS, 2)
    gap = rng.uniform(*_GAP_DAYS)
    n1 = int(round(orbit1 / CADENCE_DAYS))
    n_gap = int(round(gap / CADENCE_DAYS))
    n2 = int(round(orbit2 / CADENCE_DAYS))
    n = n1 + n_gap + n2
    grid = start + CADENCE_DAYS * np.arange(n, dtype=np.float64)
    in_gap = np.zeros(n, dtype=bool)
    in_gap[n1:n1 + n_gap] = True
    time = np.where(in_gap, np.nan, grid)

    interval = rng.uniform(*_DUMP_INTERVAL_DAYS)
    dump_flag = np.zeros(n, dtype=bool)
    dump_nan = np.zeros(n, dtype=bool)
    dump_rows = []
    for lo, hi in ((0, n1), (n1 + n_gap, n)):
        t = rng.uniform(0.3, interval)
        while True:
            row = lo + int(round(t / CADENCE_DAYS))
            if row >= hi - 5:
                break
            n_flag = int(rng.integers(1, 3))
            before, after = (int(v) for v in rng.integers(0, 4, 2))
            dump_flag[row:row + n_flag] = True
            dump_nan[max(lo, row - before):min(hi, row + n_flag + after)] = True
            dump_rows.append(row)
            t += interval
    for a in (grid, time, in_gap, dump_flag, dump_nan):
        a.setflags(write=False)
    return SectorLayout(sector, grid, time, in_gap, dump_flag, dump_nan, (0, n1 + n_gap),
                        tuple(dump_rows))


# ============================================================================================
# Noise
# ============================================================================================


def _star_flux(tessmag):
    return _FLUX_T10 * 10.0 ** (-0.4 * (np.asarray(tessmag, dtype=float) - 10.0))


def noise_per_point(tessmag, relative_flux=1.0):
    """White noise per 2-minute point, as a fraction of the star's flux.

    ``sqrt((F + B) t) / (F t)`` for a star of flux ``F = 15000 * 10**(-0.4 (Tmag - 10))`` e-/s
    (times ``relative_flux``), background ``B = 1000`` e-/s and an effective exposure
    ``t = 96`` s, added in quadrature to a floor of 20 ppm hr^0.5.
    """
    f = _star_flux(tessmag) * np.asarray(relative_flux, dtype=float)
    photon = np.sqrt((f + _BACKGROUND_E_S) * _EXPOSURE_S) / (f * _EXPOSURE_S)
    floor = _FLOOR_PPM_HR * 1e-6 * math.sqrt(1.0 / 24.0 / CADENCE_DAYS)
    return np.sqrt(photon**2 + floor**2)


def _ar1(rng: np.random.Generator, n: int, sigma: float, tau_days: float) -> np.ndarray:
    """Stationary AR(1) red noise of standard deviation ``sigma`` and e-folding ``tau_days``."""
    phi = math.exp(-CADENCE_DAYS / max(tau_days, 1e-6))
    white = rng.standard_normal(n)
    out, _ = lfilter([math.sqrt(1.0 - phi * phi)], [1.0, -phi], white, zi=[phi * rng.standard_normal()])
    return sigma * out


def _log_uniform(rng, lo, hi, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


# ============================================================================================
# Models
# ============================================================================================


def _disc_overlap(d, r_occ, r):
    """Overlap area of a disc of radius ``r`` and an occulting disc of radius ``r_occ`` whose
    centres are ``d`` apart (all arrays broadcast)."""
    d, r_occ, r = np.broadcast_arrays(np.asarray(d, float), np.asarray(r_occ, float), np.asarray(r, float))
    out = np.zeros(d.shape)
    inside = d <= np.abs(r - r_occ)
    out[inside] = np.pi * np.minimum(r, r_occ)[inside] ** 2
    part = (d < r + r_occ) & ~inside
    if part.any():
        dd, ro, rr = d[part], r_occ[part], r[part]
        c1 = np.clip((dd**2 + rr**2 - ro**2) / (2 * dd * rr), -1.0, 1.0)
        c2 = np.clip((dd**2 + ro**2 - rr**2) / (2 * dd * ro), -1.0, 1.0)
        k = (-dd + rr + ro) * (dd + rr - ro) * (dd - rr + ro) * (dd + rr + ro)
        out[part] = rr**2 * np.arccos(c1) + ro**2 * np.arccos(c2) - 0.5 * np.sqrt(np.maximum(k, 0.0))
    return out


def _blocked_fraction(d, r_star, r_occ, u=_LIMB_U):
    """Fraction of a linearly limb-darkened star's flux hidden by an occulting disc.

    The star is cut into six annuli of equal width, each of uniform brightness
    ``1 - u (1 - mu)`` at its mid radius.
    """
    d = np.asarray(d, float)
    edges = r_star * np.arange(_N_ANNULI + 1) / _N_ANNULI
    mid = 0.5 * (edges[1:] + edges[:-1])
    intensity = 1.0 - u * (1.0 - np.sqrt(1.0 - (mid / r_star) ** 2))
    total = np.sum(intensity * np.pi * (edges[1:] ** 2 - edges[:-1] ** 2))
    areas = _disc_overlap(d[..., None], r_occ, edges[None, 1:])
    rings = np.diff(np.concatenate([np.zeros(d.shape + (1,)), areas], axis=-1), axis=-1)
    return rings @ intensity / total


def _kepler_true_anomaly(mean_anomaly, e):
    """True anomaly and radius (in units of the semi-major axis) for mean anomalies (Newton)."""
    if e <= 0.0:
        return np.asarray(mean_anomaly, float), np.ones(np.shape(mean_anomaly))
    m = np.mod(mean_anomaly, 2 * np.pi)
    ecc = m + e * np.sin(m)
    for _ in range(30):
        step = (ecc - e * np.sin(ecc) - m) / (1.0 - e * np.cos(ecc))
        ecc = ecc - step
        if np.max(np.abs(step)) < 1e-10:
            break
    nu = 2.0 * np.arctan2(math.sqrt(1.0 + e) * np.sin(ecc / 2), math.sqrt(1.0 - e) * np.cos(ecc / 2))
    return nu, 1.0 - e * np.cos(ecc)


def _mean_anomaly_at(nu, e):
    ecc = 2.0 * math.atan2(math.sqrt(1.0 - e) * math.sin(nu / 2), math.sqrt(1.0 + e) * math.cos(nu / 2))
    return ecc - e * math.sin(ecc)


def _conjunction_offsets(e, omega):
    """Mean-anomaly of primary conjunction, and the secondary's phase after it (0-1)."""
    m_pri = _mean_anomaly_at(math.pi / 2 - omega, e)
    m_sec = _mean_anomaly_at(3 * math.pi / 2 - omega, e)
    return m_pri, ((m_sec - m_pri) / (2 * math.pi)) % 1.0


def binary_eclipse_loss(t, *, period, epoch, r1, r2, cos_i, sb_ratio, e=0.0, omega=0.0, u=_LIMB_U):
    """Fractional flux lost to eclipses in a binary of two limb-darkened spheres.

    Parameters
    ----------
    t : array
        Times (days).
    period, epoch : float
        Orbital period and time of the conjunction with star 1 behind star 2, days (the
        primary minimum unless limb darkening or eccentricity make the other one deeper).
    r1, r2 : float
        Radii in units of the semi-major axis.
    cos_i : float
        Cosine of the inclination.
    sb_ratio : float
        Surface brightness of star 2 over star 1 (<= 1 makes the primary the deeper minimum).
    e, omega : float
        Eccentricity and argument of periastron (radians) of the relative orbit.
    u : float
        Linear limb-darkening coefficient of both stars.

    Returns
    -------
    ndarray
        Loss as a fraction of the system's total light (0 outside eclipse).
    """
    t = np.asarray(t, float)
    m_pri, _ = _conjunction_offsets(e, omega)
    mean_anomaly = m_pri + 2 * np.pi * (t - epoch) / period
    nu, r = _kepler_true_anomaly(mean_anomaly, e)
    sin_i2 = 1.0 - cos_i**2
    s = np.sin(omega + nu)
    d = r * np.sqrt(np.maximum(1.0 - s**2 * sin_i2, 0.0))
    lum1 = r1**2
    lum2 = r2**2 * sb_ratio
    l1, l2 = lum1 / (lum1 + lum2), lum2 / (lum1 + lum2)
    loss = np.zeros(t.shape)
    near = d < r1 + r2
    if near.any():
        star1_behind = s[near] > 0
        dn = d[near]
        out = np.where(star1_behind,
                       l1 * _blocked_fraction(dn, r1, r2, u),
                       l2 * _blocked_fraction(dn, r2, r1, u))
        loss[near] = out
    return loss


def contact_binary_curve(phase, *, amplitude_mag, shape, depth_ratio, oconnell):
    """Relative flux of a W UMa contact binary at orbital ``phase`` (primary minimum at 0).

    ``m = A s(phase) + c A sin(2 pi phase)`` with
    ``s = ((1 + cos 4 pi phase) / 2)**shape * (1 - (1 - depth_ratio) (1 - cos 2 pi phase) / 2)``,
    flux ``10**(-0.4 m)`` (1 at maximum light without the O'Connell term).
    """
    x = 2 * np.pi * np.asarray(phase, float)
    s = ((1.0 + np.cos(2 * x)) / 2.0) ** shape * (1.0 - (1.0 - depth_ratio) * (1.0 - np.cos(x)) / 2.0)
    m = amplitude_mag * (s + oconnell * np.sin(x))
    return 10.0 ** (-0.4 * m)


def spot_curve(t, *, period, inclination, latitude, longitude, amplitude, t_peak, width, u=_LIMB_U):
    """Fractional flux deficit of one evolving spot on a rotating star.

    The deficit is ``amplitude * g(t) * mu (1 - u (1 - mu))`` where ``mu`` (clipped at 0, spot
    behind the limb) is the cosine of the spot's angle from the line of sight and
    ``g = exp(-(t - t_peak)**2 / (2 width**2))`` its growth and decay. Angles in radians.
    """
    t = np.asarray(t, float)
    mu = (math.cos(inclination) * math.sin(latitude)
          + math.sin(inclination) * math.cos(latitude) * np.cos(2 * np.pi * t / period + longitude))
    mu = np.clip(mu, 0.0, None)
    growth = np.exp(-0.5 * ((t - t_peak) / width) ** 2)
    return amplitude * growth * mu * (1.0 - u * (1.0 - mu))


@lru_cache(maxsize=256)
def _rr_template(rise_q: int) -> np.ndarray:
    """A 1024-point asymmetric triangle wave (rise fraction ``rise_q / 1000``), smoothed to 10
    harmonics, normalised to the range [-0.5, 0.5] with maximum light at phase 0."""
    rise = rise_q / 1000.0
    x = np.arange(1024) / 1024.0
    wave = np.where(x < rise, x / rise, 1.0 - (x - rise) / (1.0 - rise))  # 0 -> 1 -> 0
    spec = np.fft.rfft(wave)
    spec[11:] = 0.0
    spec[1:11] *= np.exp(-np.arange(1, 11) / 8.0)
    smooth = np.fft.irfft(spec, 1024)
    smooth = np.roll(smooth, -int(np.argmax(smooth)))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    out = 0.5 - smooth  # magnitude-like: -0.5 at maximum light
    out.setflags(write=False)
    return out


def rr_lyrae_curve(phase, *, amplitude_mag, rise_fraction):
    """Relative flux of an RR Lyrae star, maximum light at ``phase`` 0: a fast rise over
    ``rise_fraction`` of the cycle and a slow decline, ``amplitude_mag`` peak to peak."""
    template = _rr_template(int(round(rise_fraction * 1000)))
    grid = np.arange(1025) / 1024.0
    m = np.interp(np.mod(phase, 1.0), grid, np.append(template, template[0]))
    return 10.0 ** (-0.4 * amplitude_mag * (m + 0.5))


def transit_loss(t, *, period, epoch, depth_ratio, impact, duration, u=_LIMB_U):
    """Fractional flux hidden by a transiting planet of radius ``depth_ratio`` (planet/star).

    The planet crosses the limb-darkened star in a straight line at ``impact`` stellar
    radii from the centre; ``duration`` (days) is first to fourth contact.
    """
    t = np.asarray(t, float)
    dt = np.mod(t - epoch + 0.5 * period, period) - 0.5 * period
    k = depth_ratio
    chord = math.sqrt(max((1.0 + k) ** 2 - impact**2, 1e-12))
    speed = 2.0 * chord / duration
    z = np.sqrt(impact**2 + (speed * dt) ** 2)
    loss = np.zeros(t.shape)
    near = z < 1.0 + k
    if near.any():
        loss[near] = _blocked_fraction(z[near], 1.0, k, u)
    return loss


# ============================================================================================
# Per-kind parameter draws
# ============================================================================================


def _phases(t, period, epoch):
    return np.mod((np.asarray(t, float) - epoch) / period, 1.0)


def _eclipse_depths(params, ellipsoidal=0.0, reflection=0.0, dilution=0.0):
    """Primary and secondary depths (relative to the maximum) and the secondary's phase, from a
    fine phase grid of the noise-free binary model."""
    p = params
    phase = np.linspace(0.0, 1.0, 4001)[:-1]
    flux = _binary_flux(phase * p["period"] + p["epoch"], p, ellipsoidal, reflection, dilution)
    _, sec_phase = _conjunction_offsets(p["e"], p["omega"])
    top = flux.max()
    win = 0.02 + 0.5 * (p["r1"] + p["r2"]) / np.pi

    def depth_near(ph0):
        dist = np.abs(((phase - ph0 + 0.5) % 1.0) - 0.5)
        return float(1.0 - flux[dist <= win].min() / top)

    return depth_near(0.0), depth_near(sec_phase), float(sec_phase)


def _binary_flux(t, p, ellipsoidal=0.0, reflection=0.0, dilution=0.0):
    loss = binary_eclipse_loss(t, period=p["period"], epoch=p["epoch"], r1=p["r1"], r2=p["r2"],
                               cos_i=p["cos_i"], sb_ratio=p["sb_ratio"], e=p["e"], omega=p["omega"])
    flux = 1.0 - loss
    if ellipsoidal or reflection:
        x = 2 * np.pi * _phases(t, p["period"], p["epoch"])
        flux = flux - ellipsoidal * (1.0 + np.cos(2 * x)) / 2.0 + reflection * (1.0 - np.cos(x)) / 2.0
    return (1.0 - dilution) * flux + dilution if dilution else flux


def _count_eclipses(layout, period, epoch, phase0, half_width):
    """Eclipses of phase ``phase0`` whose central half has at least one cadence with data."""
    t_data = layout.grid[layout.has_data]
    first = math.floor((layout.grid[0] - epoch) / period - phase0) - 1
    last = math.ceil((layout.grid[-1] - epoch) / period - phase0) + 1
    centres = epoch + (np.arange(first, last + 1) + phase0) * period
    reach = max(half_width / 2.0, 2 * CADENCE_DAYS)
    lo = np.searchsorted(t_data, centres - reach)
    hi = np.searchsorted(t_data, centres + reach)
    return int(np.count_nonzero(hi > lo))


def is_detectable(primary_depth, secondary_depth, sigma_30, n_primary=None, n_secondary=None) -> bool:
    """The detectability rule of the module docstring: an EB that is visibly eclipsing.

    Parameters
    ----------
    primary_depth, secondary_depth : float
        Fractional depths of the noise-free model.
    sigma_30 : float
        White noise per 30-minute bin, as a fraction of the flux.
    n_primary, n_secondary : int, optional
        Primary and secondary eclipses that fall on cadences with data; when given, at least
        two eclipses (secondaries counted only when seen) and one primary are required.
    """
    if primary_depth < _PRIMARY_SIGMA * sigma_30:
        return False
    seen_secondary = secondary_depth >= _SECONDARY_SIGMA * sigma_30
    if not seen_secondary and primary_depth < _NO_SECONDARY_MIN_DEPTH:
        return False
    if n_primary is not None:
        n_sec = (n_secondary or 0) if seen_secondary else 0
        if n_primary < 1 or n_primary + n_sec < 2:
            return False
    return True


def _sector_bounds(layout):
    return float(layout.grid[0]), float(layout.grid[-1])


def _draw_detached(rng, layout, sigma_30, fixed):
    t0, _ = _sector_bounds(layout)
    for attempt in range(_MAX_TRIES):
        period = fixed.pick("period", float(_log_uniform(rng, 0.5, 15.0)))
        scatter = float(rng.normal(0.0, 0.3))
        r_sum = fixed.pick("r_sum", float(np.clip(0.2 * period**-0.47 * 10**scatter, 0.035, 0.3)))
        k = fixed.pick("radius_ratio", float(rng.uniform(0.35, 1.0)))
        u_sb, sb_hot, sb_cool = rng.random(), float(rng.uniform(0.3, 1.0)), float(_log_uniform(rng, 0.01, 0.3))
        sb = fixed.pick("sb_ratio", sb_hot if u_sb < 0.75 else sb_cool)
        b = fixed.pick("impact", float(rng.uniform(0.0, 0.95)))
        u_ecc, e_drawn = rng.random(), float(rng.uniform(0.02, 0.5))
        e_max = max(0.0, min(0.5, 1.0 - 1.5 * r_sum))
        e = fixed.pick("e", min(e_drawn, e_max) if (period > 2.0 and u_ecc < 0.4) else 0.0)
        omega = fixed.pick("omega", float(rng.uniform(0.0, 2 * np.pi)))
        dilution = fixed.pick("dilution", float(rng.uniform(0.0, 0.5)))
        epoch = fixed.pick("epoch", t0 + float(rng.uniform(0.0, period)))
        r1 = r_sum / (1.0 + k)
        r2 = r_sum - r1
        sep_pri = (1.0 - e * e) / (1.0 + e * math.sin(omega))  # separation at primary conjunction
        cos_i = min(b * r_sum / sep_pri, 1.0)
        p = dict(period=period, epoch=epoch, r1=r1, r2=r2, r_sum=r_sum, radius_ratio=k,
                 sb_ratio=sb, impact=b, cos_i=cos_i, e=e, omega=omega, dilution=dilution)
        d1, d2, sec_phase = _eclipse_depths(p, dilution=dilution)
        half = 0.5 * period * r_sum / np.pi
        n1 = _count_eclipses(layout, period, epoch, 0.0, half)
        n2 = _count_eclipses(layout, period, epoch, sec_phase, half)
        primary_epoch = epoch
        if d2 > d1:  # limb darkening or eccentricity made the other eclipse the deeper one
            primary_epoch = epoch + sec_phase * period
            d1, d2, n1, n2, sec_phase = d2, d1, n2, n1, (1.0 - sec_phase) % 1.0
        ok = is_detectable(d1, d2, sigma_30, n1, n2)
        if ok or (fixed and attempt >= 50):
            break
    p.update(primary_depth=d1, secondary_depth=d2, secondary_phase=sec_phase, primary_epoch=primary_epoch,
             n_primary=n1, n_secondary=n2, inclination_deg=math.degrees(math.acos(cos_i)),
             detectable=ok)
    return p


def _draw_beta_lyrae(rng, layout, sigma_30, fixed):
    t0, _ = _sector_bounds(layout)
    for attempt in range(_MAX_TRIES):
        period = fixed.pick("period", float(_log_uniform(rng, 0.4, 5.0)))
        r_sum = fixed.pick("r_sum", float(rng.uniform(0.45, 0.7)))
        k = fixed.pick("radius_ratio", float(rng.uniform(0.6, 1.3)))
        sb = fixed.pick("sb_ratio", float(rng.uniform(0.15, 0.6)))
        b = fixed.pick("impact", float(rng.uniform(0.0, 0.7)))
        ell = fixed.pick("ellipsoidal", float(rng.uniform(0.03, 0.15)))
        refl = fixed.pick("reflection", float(rng.uniform(0.0, 0.03)))
        dilution = fixed.pick("dilution", float(rng.uniform(0.0, 0.3)))
        epoch = fixed.pick("epoch", t0 + float(rng.uniform(0.0, period)))
        r1 = r_sum / (1.0 + k)
        p = dict(period=period, epoch=epoch, r1=r1, r2=r_sum - r1, r_sum=r_sum, radius_ratio=k,
                 sb_ratio=sb, impact=b, cos_i=min(b * r_sum, 1.0), e=0.0, omega=0.0,
                 ellipsoidal=ell, reflection=refl, dilution=dilution)
        d1, d2, sec_phase = _eclipse_depths(p, ell, refl, dilution)
        ok = is_detectable(d1, d2, sigma_30) and d2 <= 0.8 * d1
        if ok or (fixed and attempt >= 50):
            break
    p.update(primary_depth=d1, secondary_depth=d2, secondary_phase=sec_phase,
             inclination_deg=math.degrees(math.acos(p["cos_i"])), detectable=ok)
    return p


def _contact_depths(p):
    phase = np.linspace(0.0, 1.0, 4001)[:-1]
    f = contact_binary_curve(phase, amplitude_mag=p["amplitude_mag"], shape=p["shape"],
                             depth_ratio=p["depth_ratio"], oconnell=p["oconnell"])
    top = f.max()
    d1 = float(1.0 - f[(phase < 0.05) | (phase > 0.95)].min() / top)
    d2 = float(1.0 - f[np.abs(phase - 0.5) < 0.05].min() / top)
    return d1, d2


def _draw_contact(rng, layout, sigma_30, fixed):
    t0, _ = _sector_bounds(layout)
    for attempt in range(_MAX_TRIES):
        period = fixed.pick("period", float(np.clip(0.37 * 10 ** rng.normal(0.0, 0.15), 0.22, 1.0)))
        amp = fixed.pick("amplitude_mag", float(_log_uniform(rng, 0.05, 0.8)))
        shape = fixed.pick("shape", float(rng.uniform(1.0, 2.0)))
        ratio = fixed.pick("depth_ratio", float(rng.uniform(0.8, 1.0)))
        oc = fixed.pick("oconnell", float(rng.uniform(-0.05, 0.05)))
        epoch = fixed.pick("epoch", t0 + float(rng.uniform(0.0, period)))
        p = dict(period=period, epoch=epoch, amplitude_mag=amp, shape=shape, depth_ratio=ratio,
                 oconnell=oc)
        d1, d2 = _contact_depths(p)
        ok = is_detectable(d1, d2, sigma_30)
        if ok or (fixed and attempt >= 50):
            break
    p.update(primary_depth=d1, secondary_depth=d2, secondary_phase=0.5, detectable=ok)
    return p


def _draw_spots(rng, layout, fixed):
    t0, t1 = _sector_bounds(layout)
    period = fixed.pick("period", float(_log_uniform(rng, 0.3, 20.0)))
    inclination = fixed.pick("inclination", float(np.arccos(rng.uniform(math.cos(math.radians(90)),
                                                                       math.cos(math.radians(20))))))
    n_spots = fixed.pick("n_spots", 1 if rng.random() < 0.6 else 2)
    amp = fixed.pick("amplitude", float(_log_uniform(rng, 0.001, 0.08)))
    spots = []
    for j in range(2):  # always draw two spots so that n_spots changes nothing else
        spots.append(dict(
            period=period * (1.0 if j == 0 else 1.0 + float(rng.uniform(-0.03, 0.03))),
            latitude=float(rng.uniform(-math.pi / 3, math.pi / 3)),
            longitude=float(rng.uniform(0.0, 2 * math.pi)),
            amplitude=amp * (1.0 if j == 0 else float(rng.uniform(0.3, 1.0))),
            t_peak=float(rng.uniform(t0 - 10.0, t1 + 10.0)),
            width=float(rng.uniform(6.0, 30.0)),
        ))
    return dict(period=period, inclination=inclination, n_spots=int(n_spots), amplitude=amp,
                spots=spots[: int(n_spots)])


def _draw_dsct(rng, layout, fixed):
    n_modes = fixed.pick("n_modes", int(rng.integers(2, 7)))
    freqs = _log_uniform(rng, 4.0, 50.0, 6)
    a1 = float(_log_uniform(rng, 0.5, 50.0))
    amps = a1 * np.concatenate([[1.0], rng.uniform(0.05, 0.7, 5)])
    phases = rng.uniform(0.0, 2 * np.pi, 6)
    freqs = np.asarray(fixed.pick("frequencies", freqs[:n_modes]), float)
    amps = np.asarray(fixed.pick("amplitudes_mmag", amps[:n_modes]), float)
    phases = np.asarray(fixed.pick("phases", phases[: len(freqs)]), float)
    return dict(n_modes=int(len(freqs)), frequencies=freqs.tolist(), amplitudes_mmag=amps.tolist(),
                phases=phases.tolist(), period=float(1.0 / freqs[int(np.argmax(amps))]))


def _draw_rrlyr(rng, layout, fixed):
    t0, _ = _sector_bounds(layout)
    rrab = bool(rng.random() < 0.7)
    ab = (float(rng.uniform(0.45, 0.9)), float(rng.uniform(0.3, 1.2)), float(rng.uniform(0.12, 0.25)))
    c = (float(rng.uniform(0.3, 0.45)), float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.30, 0.42)))
    period, amp, rise = ab if rrab else c
    period = fixed.pick("period", period)
    return dict(subtype="RRab" if rrab else "RRc", period=period,
                amplitude_mag=fixed.pick("amplitude_mag", amp),
                rise_fraction=fixed.pick("rise_fraction", rise),
                epoch=fixed.pick("epoch", t0 + float(rng.uniform(0.0, period))),
                dilution=fixed.pick("dilution", float(rng.uniform(0.0, 0.5))))


def _draw_transit(rng, layout, fixed):
    t0, _ = _sector_bounds(layout)
    period = fixed.pick("period", float(_log_uniform(rng, 0.5, 15.0)))
    depth = fixed.pick("depth", float(_log_uniform(rng, 5e-4, 0.02)))
    hours = float(rng.uniform(1.0, 6.0))
    duration = fixed.pick("duration", min(hours / 24.0, 0.12 * period))
    impact = fixed.pick("impact", float(rng.uniform(0.0, 0.85)))
    epoch = fixed.pick("epoch", t0 + float(rng.uniform(0.0, period)))
    mu = math.sqrt(max(1.0 - impact**2, 0.0))
    centre_brightness = (1.0 - _LIMB_U * (1.0 - mu)) / (1.0 - _LIMB_U / 3.0)
    k = math.sqrt(depth / centre_brightness)
    true_depth = float(transit_loss(np.array([epoch]), period=period, epoch=epoch, depth_ratio=k,
                                    impact=impact, duration=duration)[0])
    return dict(period=period, epoch=epoch, radius_ratio=k, impact=impact, duration=duration,
                depth=true_depth)


def _draw_systematics(rng, layout, fixed):
    red_sigma, red_tau = float(_log_uniform(rng, 5e-4, 5e-3)), float(_log_uniform(rng, 0.05, 2.0))
    u_ramp, ramp = rng.random(), float(rng.uniform(0.001, 0.02) * rng.choice([-1.0, 1.0]))
    p = dict(
        red_sigma=fixed.pick("red_sigma", red_sigma),
        red_tau=fixed.pick("red_tau", red_tau),
        ramp=fixed.pick("ramp", ramp if u_ramp < 0.7 else 0.0),
        ramp_tau=fixed.pick("ramp_tau", float(rng.uniform(0.1, 1.0))),
    )
    has_jumps = rng.random() < 0.6
    n_jumps = int(rng.integers(1, 4)) if has_jumps else 0
    rows = rng.integers(0, layout.n_rows, 3)
    sizes = _log_uniform(rng, 5e-4, 5e-3, 3) * rng.choice([-1.0, 1.0], 3)
    p["jump_rows"] = fixed.pick("jump_rows", sorted(int(r) for r in rows[:n_jumps]))
    p["jump_sizes"] = fixed.pick("jump_sizes", [float(s) for s in sizes[: len(p["jump_rows"])]])
    return p


_PARAMS = {
    "EA": ("period", "epoch", "r_sum", "radius_ratio", "sb_ratio", "impact", "e", "omega", "dilution"),
    "EB": ("period", "epoch", "r_sum", "radius_ratio", "sb_ratio", "impact", "ellipsoidal",
           "reflection", "dilution"),
    "EW": ("period", "epoch", "amplitude_mag", "shape", "depth_ratio", "oconnell"),
    "spots": ("period", "inclination", "n_spots", "amplitude"),
    "dsct": ("n_modes", "frequencies", "amplitudes_mmag", "phases"),
    "rrlyr": ("period", "amplitude_mag", "rise_fraction", "epoch", "dilution"),
    "transit": ("period", "depth", "duration", "impact", "epoch"),
    "systematics": ("red_sigma", "red_tau", "ramp", "ramp_tau", "jump_rows", "jump_sizes"),
    "quiet": (),
}


# ============================================================================================
# One light curve
# ============================================================================================


def _astro_model(kind, p, t):
    """Noise-free relative flux of ``kind`` at times ``t`` (``p`` as drawn)."""
    if kind == "EA":
        return _binary_flux(t, p, dilution=p["dilution"])
    if kind == "EB":
        return _binary_flux(t, p, p["ellipsoidal"], p["reflection"], p["dilution"])
    if kind == "EW":
        return contact_binary_curve(_phases(t, p["period"], p["epoch"]), amplitude_mag=p["amplitude_mag"],
                                    shape=p["shape"], depth_ratio=p["depth_ratio"], oconnell=p["oconnell"])
    if kind == "spots":
        deficit = np.zeros(t.shape)
        for s in p["spots"]:
            deficit += spot_curve(t, inclination=p["inclination"], **s)
        return 1.0 - deficit
    if kind == "dsct":
        m = np.zeros(t.shape)
        for f, a, ph in zip(p["frequencies"], p["amplitudes_mmag"], p["phases"]):
            m += 1e-3 * a * np.sin(2 * np.pi * f * t + ph)
        return 10.0 ** (-0.4 * m)
    if kind == "rrlyr":
        f = rr_lyrae_curve(_phases(t, p["period"], p["epoch"]), amplitude_mag=p["amplitude_mag"],
                           rise_fraction=p["rise_fraction"])
        return (1.0 - p["dilution"]) * f + p["dilution"]
    if kind == "transit":
        return 1.0 - transit_loss(t, period=p["period"], epoch=p["epoch"], depth_ratio=p["radius_ratio"],
                                  impact=p["impact"], duration=p["duration"])
    return np.ones(t.shape)


def _systematics(rng, layout, kind, p):
    """Multiplicative systematics ``1 + s(t)``: the mild residuals every curve has, scattered-
    light ramps on some, and for ``kind == "systematics"`` the strong ones of ``p``."""
    grid = layout.grid
    n = grid.size
    s = _ar1(rng, n, float(_log_uniform(rng, 2e-5, 2e-4)), float(_log_uniform(rng, 0.2, 2.0)))
    starts = list(layout.orbit_starts) + [n]
    for a, b in zip(starts[:-1], starts[1:]):
        s[a:b] += rng.uniform(-5e-5, 5e-5) * (grid[a:b] - grid[a])
    for row in layout.dump_rows:
        s[row:] += rng.normal(0.0, 3e-5)
    u_ramp, u_sign = rng.random(2)
    amp = float(_log_uniform(rng, 3e-4, 5e-3)) * (1.0 if u_sign < 0.75 else -1.0)
    tau = float(rng.uniform(0.1, 0.6))
    scale = rng.uniform(0.5, 1.0, len(starts) - 1)
    if u_ramp < 0.3:
        for j, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
            s[a:b] += amp * scale[j] * np.exp(-(grid[a:b] - grid[a]) / tau)
    if kind == "systematics":
        s += _ar1(rng, n, p["red_sigma"], p["red_tau"])
        a = layout.orbit_starts[1]
        s[a:] += p["ramp"] * np.exp(-(grid[a:] - grid[a]) / p["ramp_tau"])
        for row, size in zip(p["jump_rows"], p["jump_sizes"]):
            s[int(row):] += size
    return 1.0 + s


def _scattered_flags(rng, n):
    """Per-target quality flags and NaNs: 1024, 512 (with outliers), 128 runs, unflagged NaNs.

    Returns ``(quality, outlier_rows, nan_rows)``.
    """
    quality = np.zeros(n, dtype=np.int32)
    rows_1024 = rng.integers(0, n, rng.poisson(6))
    rows_512 = rng.integers(0, n, rng.poisson(2))
    quality[rows_1024] |= 1024
    quality[rows_512] |= 512
    u_run, start, length = rng.random(), int(rng.integers(0, n - 60)), int(rng.integers(5, 61))
    if u_run < 0.3:
        quality[start:start + length] |= 128
    nan_rows = rng.integers(0, n, rng.poisson(2))
    return quality, rows_512, nan_rows


def _truth_summary(kind, p, model, noise):
    """The common truth fields of one curve."""
    top = float(np.max(model))
    amplitude = float((top - np.min(model)) / top) if kind not in ("systematics", "quiet") else 0.0
    out = dict(kind=kind, label=int(kind in EB_KINDS), period_days=0.0, epoch_btjd=0.0,
               primary_depth=0.0, secondary_depth=0.0, secondary_phase=0.0,
               amplitude=amplitude, noise_ppm=float(noise * 1e6))
    if kind in EB_KINDS:
        out.update(period_days=p["period"], epoch_btjd=p.get("primary_epoch", p["epoch"]),
                   primary_depth=p["primary_depth"],
                   secondary_depth=p["secondary_depth"], secondary_phase=p["secondary_phase"])
    elif kind == "transit":
        out.update(period_days=p["period"], epoch_btjd=p["epoch"], primary_depth=p["depth"])
    elif kind in ("spots", "dsct", "rrlyr"):
        out["period_days"] = p["period"]
    return out


def _check_tessmag(tessmag) -> float:
    try:
        value = float(tessmag)
    except (TypeError, ValueError):
        raise BinarycatError(f"tessmag must be a number, not {tessmag!r}.") from None
    if not (np.isfinite(value) and _MIN_TESSMAG <= value <= _MAX_TESSMAG):
        raise BinarycatError(f"tessmag must lie in [{_MIN_TESSMAG:g}, {_MAX_TESSMAG:g}] "
                             f"(fainter stars get no simulated TESS light curve), not {tessmag!r}.")
    return value


def simulate_lightcurve(kind: str, *, rng, tic_id: int, sector: int, ra: float, dec: float,
                        tessmag: float, **params) -> tuple[TessLightCurve, dict]:
    """Simulate one sector of one target's TESS 2-minute light curve.

    Parameters
    ----------
    kind : str
        One of `KINDS`: ``EA``, ``EB``, ``EW`` (eclipsing binaries) or ``spots``, ``dsct``,
        ``rrlyr``, ``transit``, ``systematics``, ``quiet``.
    rng : numpy.random.Generator or int
        The random stream (an int seeds a new generator).
    tic_id, sector : int
    ra, dec : float
        ICRS degrees, written to the header.
    tessmag : float
        TESS magnitude (at most 17); sets the flux level and the noise.
    **params
        Values that replace the drawn ones (the names are those of the returned truth, e.g.
        ``period``, ``epoch``, ``dilution``; see ``_PARAMS``). All draws are made anyway, so
        fixing one parameter does not change the others. EBs with fixed parameters may break
        the detectability rule; ``truth["detectable"]`` says so.

    Returns
    -------
    lc : TessLightCurve
        Time (NaN in the gap), PDCSAP-like flux and error (e-/s), quality.
    truth : dict
        The common truth fields (``label``, ``kind``, ``period_days``, ``epoch_btjd``,
        ``primary_depth``, ``secondary_depth``, ``secondary_phase``, ``amplitude``,
        ``noise_ppm``, ``detectable``) and every parameter of the kind.

    Raises
    ------
    BinarycatError
        For an unknown kind or parameter, a bad sector or tessmag.
    """
    if kind not in KINDS:
        raise BinarycatError(f"Unknown light-curve kind {kind!r}; choose one of {', '.join(KINDS)}.")
    unknown = sorted(set(params) - set(_PARAMS[kind]))
    if unknown:
        allowed = ", ".join(_PARAMS[kind]) or "none"
        raise BinarycatError(f"Unknown parameter(s) {', '.join(unknown)} for kind {kind!r} "
                             f"(allowed: {allowed}).")
    if int(sector) != sector or sector < 1:
        raise BinarycatError(f"sector must be a positive integer, not {sector!r}.")
    tessmag = _check_tessmag(tessmag)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    layout = sector_layout(int(sector))
    fixed = _Fixed(params)
    sigma = float(noise_per_point(tessmag))
    sigma_30 = sigma / math.sqrt(_POINTS_PER_30MIN)

    if kind == "EA":
        p = _draw_detached(rng, layout, sigma_30, fixed)
    elif kind == "EB":
        p = _draw_beta_lyrae(rng, layout, sigma_30, fixed)
    elif kind == "EW":
        p = _draw_contact(rng, layout, sigma_30, fixed)
    else:
        draw = {"spots": _draw_spots, "dsct": _draw_dsct, "rrlyr": _draw_rrlyr,
                "transit": _draw_transit, "systematics": _draw_systematics,
                "quiet": lambda rng, layout, fixed: {}}[kind]
        p = draw(rng, layout, fixed)

    grid = layout.grid
    n = grid.size
    model = _astro_model(kind, p, grid)
    model = model / model.max()
    syst = _systematics(rng, layout, kind, p)
    level = float(_star_flux(tessmag)) * float(rng.uniform(*_FLUX_CAL_RANGE))
    rel_flux = model * syst
    sig_rel = noise_per_point(tessmag, rel_flux) * rel_flux  # noise relative to the mean level
    flux = level * (rel_flux + sig_rel * rng.standard_normal(n))
    flux_err = level * sig_rel

    has_data = layout.has_data
    quality, rows_512, nan_rows = _scattered_flags(rng, n)
    flux[rows_512] += level * sig_rel[rows_512] * rng.uniform(5.0, 30.0, rows_512.size) \
        * rng.choice([-1.0, 1.0], rows_512.size)
    quality[layout.dump_flag] |= 32
    quality[layout.in_gap] = 0  # gap rows: NaN time and flux, no flag (see module docstring)
    flux[~has_data] = np.nan
    flux[nan_rows] = np.nan
    flux_err[~np.isfinite(flux)] = np.nan
    camera, ccd = (int(v) for v in rng.integers(1, 5, 2))

    lc = TessLightCurve(tic_id=int(tic_id), sector=int(sector), ra=float(ra) % 360.0, dec=float(dec),
                        time=layout.time.copy(), flux=flux, flux_err=flux_err, quality=quality,
                        tessmag=round(tessmag, 3), camera=camera, ccd=ccd)
    truth = _truth_summary(kind, p, model, sigma)
    truth["detectable"] = bool(p.get("detectable", True))
    truth.update({k: v for k, v in p.items() if k not in truth})
    return lc, truth


# ============================================================================================
# Many light curves
# ============================================================================================


@dataclass
class LightCurveSimulation:
    """What `simulate_lightcurves` made.

    Attributes
    ----------
    truth : astropy.table.Table
        One row per curve, columns `TRUTH_COLUMNS` (see the module docstring).
    lightcurves : list of TessLightCurve
        The curves, in target order (empty with ``keep_arrays=False``).
    paths : list of Path
        The FITS files written, in target order (empty without ``out_dir``).
    out_dir : Path or None
    truth_csv : Path or None
        ``out_dir / lightcurve_truth.csv`` when written.
    params : list of dict
        The full truth dict of each curve (every drawn parameter).
    """

    truth: Table
    lightcurves: list[TessLightCurve] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    truth_csv: Path | None = None
    params: list[dict] = field(default_factory=list)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BinarycatError(f"seed must be a non-negative integer, not {seed!r}.")
    return int(seed)


def _check_fraction(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BinarycatError(f"{name} must be a number in [0, 1], not {value!r}.") from None
    if not 0.0 <= v <= 1.0:
        raise BinarycatError(f"{name} must lie in [0, 1], not {value!r}.")
    return v


def _lookalike_weights(weights) -> np.ndarray:
    if weights is None:
        weights = DEFAULT_LOOKALIKE_WEIGHTS
    out = dict.fromkeys(LOOKALIKE_KINDS, 0.0)
    for key, value in dict(weights).items():
        try:
            w = float(value)
        except (TypeError, ValueError):
            raise BinarycatError(f"Look-alike weight for {key!r} must be a number, not {value!r}.") from None
        if not (np.isfinite(w) and w >= 0):
            raise BinarycatError(f"Look-alike weight for {key!r} must be non-negative, not {value!r}.")
        if key == "pulsator":
            out["dsct"] += w / 2
            out["rrlyr"] += w / 2
        elif key in out:
            out[key] += w
        else:
            raise BinarycatError(f"Unknown look-alike kind {key!r}; choose from "
                                 f"{', '.join(LOOKALIKE_KINDS)} or pulsator.")
    total = sum(out.values())
    if total <= 0:
        raise BinarycatError("At least one look-alike weight must be positive.")
    return np.array([out[k] / total for k in LOOKALIKE_KINDS])


def _pick(u: float, kinds: Sequence[str], weights: np.ndarray) -> str:
    cum = np.cumsum(weights)
    return kinds[min(int(np.searchsorted(cum, u * cum[-1], side="right")), len(kinds) - 1)]


def _present(value) -> bool:
    if value is None or value is np.ma.masked:
        return False
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return str(value).strip() != ""


def _target_rows(targets) -> list[dict]:
    if isinstance(targets, Table):
        names = targets.colnames
        rows = [{k: row[k] for k in names} for row in targets]
    else:
        try:
            rows = [dict(r) for r in targets]
        except (TypeError, ValueError):
            raise BinarycatError("targets must be a Table or a sequence of mappings "
                                 "with source_id, ra and dec.") from None
    for i, r in enumerate(rows):
        missing = [k for k in ("source_id", "ra", "dec") if not _present(r.get(k))]
        if missing:
            raise BinarycatError(f"Target {i} lacks {', '.join(missing)}.")
    return rows


def tessmag_from_r(mag_r, color=None):
    """TESS magnitude from r (and the r - Ks colour when known): the sky simulator's colour law
    at 0.786 um, or ``mag_r - 0.5`` without a colour."""
    if color is None:
        return np.asarray(mag_r, float) - 0.5
    return band_magnitude(np.asarray(mag_r, float), np.asarray(color, float), 0.786)


def simulate_lightcurves(
    targets,
    *,
    seed: int = 0,
    sector: int = 1,
    eb_fraction: float = 0.4,
    out_dir=None,
    lookalike_weights: Mapping[str, float] | None = None,
    keep_arrays: bool = True,
    progress: Callable[[int, int], object] | None = None,
) -> LightCurveSimulation:
    """Simulate one sector of TESS 2-minute light curves for each target.

    Parameters
    ----------
    targets : astropy.table.Table or sequence of mappings
        Columns ``source_id``, ``ra``, ``dec`` and optionally ``tic_id``, ``tessmag``,
        ``sector``, ``mag_r``, ``color``. Without ``tic_id`` target ``i`` gets
        ``100000000 + i``; without ``tessmag`` it comes from ``mag_r`` (`tessmag_from_r`) or is
        drawn uniformly in 8-14. ``(tic_id, sector)`` must be unique.
    seed : int
        Non-negative seed; the same targets and arguments give identical truth and
        byte-identical files.
    sector : int
        Sector of targets without a ``sector`` value.
    eb_fraction : float
        Probability that a target is an eclipsing binary (0-1); EB kinds are then EA/EB/EW
        with probabilities 0.5/0.15/0.35.
    out_dir : path, optional
        When given, each curve is written as ``out_dir / spoc_filename(tic_id, sector)`` and
        the truth as ``out_dir / lightcurve_truth.csv``.
    lookalike_weights : mapping, optional
        Relative weights of the look-alike kinds (`DEFAULT_LOOKALIKE_WEIGHTS`; ``pulsator``
        splits evenly into ``dsct`` and ``rrlyr``).
    keep_arrays : bool
        Keep the `TessLightCurve` objects in the result (turn off for thousands of curves
        written to files).
    progress : callable, optional
        Called as ``progress(n_done, n_total)``: once with 0, then after each curve.

    Returns
    -------
    LightCurveSimulation

    Raises
    ------
    BinarycatError
        For a negative seed, a fraction outside [0, 1], bad weights, a target without
        source_id/ra/dec, a duplicate (tic_id, sector), or a tessmag outside [-2, 17].
    """
    seed = _check_seed(seed)
    eb_fraction = _check_fraction("eb_fraction", eb_fraction)
    look_w = _lookalike_weights(lookalike_weights)
    eb_w = np.array([EB_KIND_WEIGHTS[k] for k in EB_KINDS])
    if int(sector) != sector or sector < 1:
        raise BinarycatError(f"sector must be a positive integer, not {sector!r}.")
    rows = _target_rows(targets)
    out_dir = Path(out_dir) if out_dir is not None else None

    prepared = []
    seen = set()
    for i, r in enumerate(rows):
        tic = int(r["tic_id"]) if _present(r.get("tic_id")) else 100_000_000 + i
        sec = int(r["sector"]) if _present(r.get("sector")) else int(sector)
        if sec < 1:
            raise BinarycatError(f"Target {i} has a bad sector {r.get('sector')!r}.")
        if (tic, sec) in seen:
            raise BinarycatError(f"TIC {tic} appears twice in sector {sec}.")
        seen.add((tic, sec))
        prepared.append((tic, sec))

    n_total = len(rows)
    if progress is not None:
        progress(0, n_total)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    curves, paths, params, truth_rows = [], [], [], []
    for i, (r, (tic, sec)) in enumerate(zip(rows, prepared)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_CURVE, tic, sec]))
        u_mag, u_eb, u_kind = rng.random(3)
        if _present(r.get("tessmag")):
            tmag = float(r["tessmag"])
        elif _present(r.get("mag_r")):
            color = r.get("color") if _present(r.get("color")) else None
            tmag = float(tessmag_from_r(float(r["mag_r"]), color))
        else:
            tmag = 8.0 + 6.0 * float(u_mag)
        tmag = _check_tessmag(round(tmag, 3))
        if u_eb < eb_fraction:
            kind = _pick(u_kind, EB_KINDS, eb_w)
        else:
            kind = _pick(u_kind, LOOKALIKE_KINDS, look_w)
        lc, truth = simulate_lightcurve(kind, rng=rng, tic_id=tic, sector=sec, ra=float(r["ra"]),
                                        dec=float(r["dec"]), tessmag=tmag)
        name = ""
        if out_dir is not None:
            path = write_spoc_lightcurve(out_dir / spoc_filename(tic, sec), lc)
            lc.path = path
            paths.append(path)
            name = path.name
        if keep_arrays:
            curves.append(lc)
        truth.update(tic_id=tic, sector=sec, source_id=str(r["source_id"]), ra=lc.ra, dec=lc.dec,
                     tessmag=tmag, file=name)
        params.append(truth)
        truth_rows.append(tuple(truth[c] for c in TRUTH_COLUMNS))
        if progress is not None:
            progress(i + 1, n_total)

    table = _truth_table(truth_rows)
    table.meta.update(seed=seed, eb_fraction=eb_fraction)
    truth_csv = None
    if out_dir is not None:
        truth_csv = out_dir / TRUTH_FILENAME
        out = table.copy()
        out.meta.clear()
        out.write(truth_csv, format="ascii.csv", overwrite=True)
    return LightCurveSimulation(truth=table, lightcurves=curves, paths=paths, out_dir=out_dir,
                                truth_csv=truth_csv, params=params)


_TRUTH_DTYPES = (np.int64, np.int32, str, float, float, float, np.int8, str, float, float, float,
                 str, float, float, float, float)


def _truth_table(rows) -> Table:
    if rows:
        cols = []
        for c, d in zip(zip(*rows), _TRUTH_DTYPES):
            cols.append(np.asarray(c, dtype=d) if d is not str else np.asarray([str(v) for v in c]))
        return Table(cols, names=TRUTH_COLUMNS)
    return Table(names=TRUTH_COLUMNS, dtype=[d if d is not str else "U1" for d in _TRUTH_DTYPES])


def read_lightcurve_truth(path) -> Table:
    """Read ``lightcurve_truth.csv`` back, with ``source_id``, ``kind`` and ``file`` as strings."""
    path = Path(path)
    if not path.is_file():
        raise BinarycatError(f"No light-curve truth file at {path}.")
    table = Table.read(path, format="ascii.csv",
                       converters={"source_id": str, "kind": str, "file": str})
    return table


# ============================================================================================
# Which catalogue sources have TESS light curves
# ============================================================================================


def select_tess_targets(sources: Table, *, n: int | None = None, fraction: float | None = None,
                        seed: int = 0, max_mag: float = 16.0) -> Table:
    """Pick the catalogue sources that got TESS 2-minute light curves.

    Only sources brighter than ``max_mag`` in r are eligible (all of them when the table has
    no ``mag_r``); of those, ``n`` chosen at random (all when fewer), or each with probability
    ``fraction``, or all when neither is given.

    Parameters
    ----------
    sources : astropy.table.Table
        With ``source_id``, ``ra``, ``dec`` and, ideally, ``mag_r`` (and ``color``), e.g.
        from `binarycat.ingest.simulate.simulate_sources`.
    n : int, optional
    fraction : float, optional
    seed : int
    max_mag : float
        Eligibility limit on ``mag_r``.

    Returns
    -------
    astropy.table.Table
        The chosen rows in catalogue order, with ``tic_id`` (``100000000 +`` the row's index
        in ``sources``, so a source keeps its id whatever is chosen) and ``tessmag`` (kept when
        present, else `tessmag_from_r`, else 8-14 drawn from the seed) added.

    Raises
    ------
    BinarycatError
        For both ``n`` and ``fraction``, a negative ``n`` or seed, a fraction outside [0, 1],
        or a table without ``source_id``/``ra``/``dec``.
    """
    seed = _check_seed(seed)
    if not isinstance(sources, Table):
        sources = Table(rows=list(sources)) if sources else Table()
    missing = [c for c in ("source_id", "ra", "dec") if c not in sources.colnames]
    if missing:
        raise BinarycatError(f"The source table lacks the column(s) {', '.join(missing)}.")
    if n is not None and fraction is not None:
        raise BinarycatError("Give either n or fraction, not both.")
    if n is not None and (int(n) != n or n < 0):
        raise BinarycatError(f"n must be a non-negative integer, not {n!r}.")
    if fraction is not None:
        fraction = _check_fraction("fraction", fraction)
    total = len(sources)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_CURVE, 0x7A26]))
    u_pick = rng.random(total)
    u_mag = rng.random(total)
    if "mag_r" in sources.colnames:
        mag_r = np.ma.filled(np.ma.asarray(sources["mag_r"], dtype=float), np.inf)
        eligible = np.isfinite(mag_r) & (mag_r < max_mag)
    else:
        eligible = np.ones(total, dtype=bool)
    idx = np.flatnonzero(eligible)
    if n is not None:
        order = idx[np.argsort(u_pick[idx], kind="stable")]
        idx = np.sort(order[: int(n)])
    elif fraction is not None:
        idx = idx[u_pick[idx] < fraction]
    out = sources[idx]
    out["tic_id"] = (100_000_000 + idx).astype(np.int64)
    if "tessmag" not in sources.colnames:
        if "mag_r" in sources.colnames:
            color = np.asarray(out["color"], float) if "color" in out.colnames else None
            tmag = tessmag_from_r(np.asarray(out["mag_r"], float), color)
        else:
            tmag = 8.0 + 6.0 * u_mag[idx]
        out["tessmag"] = np.round(np.asarray(tmag, float), 3)
    return out


def field_targets(n: int, *, seed: int = 0, tic_offset: int = 300_000_000,
                  ra_range=(200.0, 260.0), dec_range=(-20.0, 20.0), tessmag_range=(8.0, 14.0)) -> Table:
    """TESS targets spread over a field away from the sky simulator's Orion region.

    A stand-in for a labelled sample of known eclipsing binaries and other variables (CALNet
    trains on 4,225 known EBs from all over the sky): ``n`` targets with ``source_id``
    ``F<tic>``, positions uniform on the sphere inside the box, ``tic_id = tic_offset + i``
    and ``tessmag`` uniform in ``tessmag_range``. Give two samples different ``tic_offset``
    values so their stars never share a TIC id.
    """
    if int(n) != n or n < 0 or int(seed) != seed or seed < 0:
        raise BinarycatError(f"n and seed must be non-negative integers, not {n!r} and {seed!r}.")
    rng = np.random.default_rng([int(seed), 0xF1E1D])
    ra = rng.uniform(*ra_range, int(n))
    sin_dec = rng.uniform(*np.sin(np.radians(dec_range)), int(n))
    tic = tic_offset + np.arange(int(n), dtype=np.int64)
    return Table({"source_id": [f"F{t}" for t in tic], "ra": ra, "dec": np.degrees(np.arcsin(sin_dec)),
                  "tic_id": tic, "tessmag": rng.uniform(*tessmag_range, int(n))})
