"""A deterministic simulator of an Orion-like sky seen by several imaging surveys.

The simulator draws a source list clustered like the Orion Nebula Cluster (ONC) and the
Orion A cloud, makes about half of the sources binaries, and writes one FITS stamp per
source, survey and filter, rendered at each survey's native pixel scale and resolution.
Every survey sees the *same* physical sky: a 0.5" pair is resolved in an HST stamp
(FWHM 0.08") and blended into one blob in a 2MASS stamp (FWHM 2.7").

Output layout
-------------
``simulate_sky(out_dir, ...)`` writes::

    out_dir/sources.csv                                   the source table (simulate_sources)
    out_dir/truth.csv                                     one row per (source, covered survey)
    out_dir/<Survey>/<source_id>_<Survey>_<filter>.fits   e.g. PanSTARRS/00222_PanSTARRS_g.fits

so all files of one source and survey share the prefix ``<source_id>_<Survey>``. A source
gets stamps from a survey only where `footprint_covers` says the survey covers it. Files
already in ``out_dir`` are overwritten when their names collide and otherwise left alone.

The source table
----------------
``source_id`` is a zero-padded five-digit string (``"00000"``, ``"00001"``, ...). Positions
are ICRS degrees: 75 % of the sources (exactly, rounded) follow a projected Plummer profile
(core radius 0.15 deg, truncated at 1 deg) around the ONC at RA 83.82, Dec -5.39; the rest lie
along the Orion A cloud, uniform in Dec from -8 to -4 deg around a ridge tilted to larger RA in
the south, 0.25 deg wide. Cluster radii and cloud declinations are stratified samples, so the
footprint coverage fractions barely vary between seeds. ``mag_r`` (12-20) follows
``dN/dm ~ 10**(0.15 m)``, so faint stars outnumber bright ones about 16 to 1. ``color`` is the
r - Ks colour (young stars are red: normal(3.5, 1) clipped to [1, 7]); the magnitude in a band
of effective wavelength ``lam`` is ``mag_r - color * x`` with
``x = log10(lam / 0.617) / log10(2.159 / 0.617)`` capped at 1.5 (`band_magnitude`).

A fraction ``binary_fraction`` of the sources are binaries. Separations are **log-uniform**
in [0.1, 2.5] arcsec (Opik's law; ``separation_range`` narrows it, e.g. to a training sky
that crowds the pairs near the surveys' resolution limits), position angles uniform in [0, 360) deg east of north,
flux ratios (companion / primary, the same in every band) uniform in [0.1, 1] (``flux_ratio_range``
narrows it, e.g. to faint companions near the label rule's S/N 5). For single
stars ``separation_arcsec``, ``position_angle_deg`` and ``flux_ratio`` are **0.0** (not NaN,
which CSV readers disagree about). About 20 % of the sources also get an unrelated field star
3.5-5" away (not a binary: the science definition of a pair is two stars within 2.5"), with its
own flux ratio (uniform [0.1, 1] in r) and colour; its columns are 0.0 where there is none.

Images
------
Each stamp is a 2-D float32 primary HDU with a TAN WCS centred on the source (CRVAL = the
source's RA/Dec, CRPIX at the image centre, CDELT1 < 0), the survey's native pixel scale and
``max(9, round(fov_arcsec / pixel_scale))`` pixels a side. The header carries SURVEY, FILTER,
SRCID, FWHM (arcsec, this filter), SIMSEED, MAGZP, SKYLEV, SKYSIG and BUNIT, and nothing that
depends on when it ran: the same seed gives byte-identical files.

The PSF has FWHM ``max(survey.fwhm_arcsec, 1.22 lambda / D)`` (`filter_fwhm_arcsec`) and is
integrated over each pixel, so undersampled surveys such as 2MASS are rendered correctly. By
default (``psf="gaussian"``) it is a circular Gaussian, integrated exactly (a separable product
of erf differences). ``psf="moffat"`` draws a circular Moffat profile of the same FWHM,
``(1 + r**2 / gamma**2) ** -beta`` (Moffat 1969; ``beta=2.5`` by default, as IRAF's DAOPHOT;
Kolmogorov seeing gives about 4.8, Trujillo et al. 2001), whose wings a Gaussian lacks: real
seeing-limited PSFs have them, so this sky tests a method that assumes a Gaussian PSF. It is
averaged over a sub-pixel grid fine enough for 0.3 % of the peak within 5 FWHM of each star and
sampled at pixel centres beyond. ``moffat_beta=(min, max)`` draws beta per source and survey,
uniform in that range, as PSFs differ from image to image. Header keywords PSF (and PSFBETA for a
Moffat) say which. Offsets of the
companion and field star are applied in the tangent plane (east = -x, north = +y). Fluxes are
in counts with zero point 28 (MAGZP; mag 20 = 1585 counts). Every pixel gets Gaussian noise of
variance ``sky + model`` (Poisson with gain 1, SKYLEV = sky, SKYSIG = sqrt(sky)); the sky level
is set per survey and filter so that a point source of magnitude 20 *in that band* has an
optimal (PSF-weighted) S/N of 15. Bright stars therefore have S/N in the hundreds to thousands,
the faintest (mag_r = 20) S/N ~ 15 in r, less in blue bands and more in red ones (the stars are
red). Other catalogue sources that happen to fall in a stamp are not rendered: a stamp holds
its primary, its companion and its field star only.

Randomness uses `numpy.random.default_rng` with an independent stream for every
(source, survey, filter): ``SeedSequence([seed, 1, source_index, survey_index, filter_index])``,
where ``survey_index`` is the survey's position in `binarycat.ingest.surveys.SURVEYS`. The source
table uses ``SeedSequence([seed, 0])``. Adding a survey therefore never changes another survey's
pixels, and `render_stamp` reproduces any single file of `simulate_sky`.

Truth labels
------------
``truth.csv`` has columns ``source_id, survey, label, is_binary, separation_arcsec,
fwhm_arcsec, flux_ratio, companion_snr``. ``fwhm_arcsec`` is the survey's nominal FWHM
(``Survey.fwhm_arcsec``, the sharpest of its filters). ``companion_snr`` is the companion's
peak S/N: the largest, over the survey's filters, of the noise-free companion-only pixel
maximum divided by the noise sigma of that pixel (sky plus the Poisson noise of everything
in the stamp), rounded to 4 decimals; it is 0.0 for single stars. The label rule is::

    label = 1  iff  is_binary and separation_arcsec >= fwhm_arcsec and companion_snr >= 5

i.e. the pair is resolved in at least one band of that survey (`resolved_label`). ``label``
and ``is_binary`` are written as 0/1 integers. Read the CSVs with `read_truth` /
`read_sources`, which keep
``source_id`` a zero-padded string; with other readers force the column to a string::

    Table.read(path, format="ascii.csv", converters={"source_id": str})
    polars.read_csv(path, schema_overrides={"source_id": polars.String})

Examples
--------
>>> t = simulate_sources(5, seed=1)
>>> t["source_id"].tolist()
['00000', '00001', '00002', '00003', '00004']
>>> bool(footprint_covers("2MASS", 83.82, -5.39))
True
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.optimize import brentq
from scipy.special import erf

from binarycat.errors import BinarycatError
from binarycat.parallel import map_chunks, worker_count
from binarycat.ingest.surveys import SURVEYS, Filter, Survey, get_survey

__all__ = [
    "SimulationResult",
    "simulate_sources",
    "simulate_sky",
    "footprint_covers",
    "render_stamp",
    "resolved_label",
    "band_magnitude",
    "filter_fwhm_arcsec",
    "stamp_size",
    "stamp_path",
    "read_sources",
    "read_truth",
    "DEFAULT_SURVEYS",
    "PSF_PROFILES",
    "DEFAULT_MOFFAT_BETA",
    "ONC_RA_DEG",
    "ONC_DEC_DEG",
]

DEFAULT_SURVEYS: tuple[str, ...] = ("2MASS", "PanSTARRS", "SDSS9", "HST")

# --- the simulated sky ---------------------------------------------------------------------
ONC_RA_DEG = 83.82
ONC_DEC_DEG = -5.39
_CLUSTER_FRACTION = 0.75
_PLUMMER_CORE_DEG = 0.15
_PLUMMER_MAX_DEG = 1.0
_CLOUD_DEC_RANGE = (-8.0, -4.0)
_CLOUD_RA_SLOPE = -0.4  # ridge RA = ONC_RA + slope * (dec - ONC_DEC): larger RA to the south
_CLOUD_WIDTH_DEG = 0.25

_MAG_RANGE = (12.0, 20.0)
_MAG_SLOPE = 0.15  # dN/dm ~ 10**(slope * m)
_COLOR_MEAN, _COLOR_SD, _COLOR_RANGE = 3.5, 1.0, (1.0, 7.0)
_R_WAVE_UM, _KS_WAVE_UM = 0.617, 2.159
_COLOR_LEVER_MAX = 1.5  # the colour law is not extrapolated past 1.5 x (r - Ks)

_SEP_RANGE = (0.1, 2.5)
_RATIO_RANGE = (0.1, 1.0)
_FIELD_FRACTION = 0.2
_FIELD_SEP_RANGE = (3.5, 5.0)
_FIELD_COLOR_MEAN, _FIELD_COLOR_SD, _FIELD_COLOR_RANGE = 2.0, 0.8, (0.0, 6.0)

# --- photometry and noise ------------------------------------------------------------------
_MAG_ZP = 28.0
_REF_MAG = 20.0
_REF_SNR = 15.0
_MIN_STAMP_PIX = 9

# --- point-spread function ----------------------------------------------------------------
PSF_PROFILES: tuple[str, ...] = ("gaussian", "moffat")
DEFAULT_MOFFAT_BETA = 2.5
_GAUSS_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_MOFFAT_WINDOW_FWHM = 5.0  # sub-pixel sampling within this many FWHM of a star
_MOFFAT_SUBPIXELS_FWHM = 12.0  # sub-pixels per FWHM there: max error ~0.3 % of the peak
_MIN_SOURCES_PER_WORKER = 25  # a source takes 20-200 ms to render and a worker ~1 s to start

# --- resolvability -------------------------------------------------------------------------
_LABEL_SNR = 5.0

_STREAM_SOURCES = 0
_STREAM_STAMPS = 1
_STREAM_PSF = 2

_BOOL_COLUMNS = ("is_binary", "has_field_star")
_TRUTH_COLUMNS = (
    "source_id", "survey", "label", "is_binary", "separation_arcsec", "fwhm_arcsec",
    "flux_ratio", "companion_snr",
)


@dataclass(frozen=True)
class SimulationResult:
    """What `simulate_sky` wrote.

    Attributes
    ----------
    out_dir : Path
        The output directory.
    sources_csv : Path
        ``out_dir/sources.csv``.
    truth_csv : Path
        ``out_dir/truth.csv``.
    n_sources : int
        Number of simulated sources (covered by any survey or not).
    n_files : int
        Number of FITS files written.
    surveys : tuple of str
        Canonical names of the simulated surveys, in the order asked for.
    files_by_survey : dict of str to int
        FITS files written per survey (0 for a survey that covers no source).
    """

    out_dir: Path
    sources_csv: Path
    truth_csv: Path
    n_sources: int
    n_files: int
    surveys: tuple[str, ...]
    files_by_survey: dict[str, int]


# ============================================================================================
# Source list
# ============================================================================================


def _check_args(n_sources: int, seed: int, binary_fraction: float) -> None:
    if int(n_sources) != n_sources or n_sources < 0:
        raise BinarycatError(f"n_sources must be a non-negative integer, not {n_sources!r}.")
    if int(seed) != seed or seed < 0:
        raise BinarycatError(f"seed must be a non-negative integer, not {seed!r}.")
    if not 0.0 <= binary_fraction <= 1.0:
        raise BinarycatError(f"binary_fraction must lie in [0, 1], not {binary_fraction!r}.")


def _check_range(name: str, value, upper: float, unit: str, why: str) -> tuple[float, float]:
    """``value`` as ``(lo, hi)`` floats with ``0 < lo <= hi <= upper``, else one clear sentence."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BinarycatError(f"{name} must be two numbers ({unit}), not {value!r}.") from None
    if not 0.0 < lo <= hi <= upper:
        raise BinarycatError(f"{name} must satisfy 0 < smallest <= largest <= {upper:g} ({why}), "
                             f"not {lo:g}, {hi:g}.")
    return lo, hi


def _check_separation_range(separation_range) -> tuple[float, float]:
    return _check_range("separation_range", separation_range, _SEP_RANGE[1], "arcsec",
                        f"arcsec; a pair is two stars within {_SEP_RANGE[1]}\"")


def _check_flux_ratio_range(flux_ratio_range) -> tuple[float, float]:
    return _check_range("flux_ratio_range", flux_ratio_range, _RATIO_RANGE[1], "companion / primary flux",
                        "companion / primary flux; the companion is the fainter star")


def _stratified_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform [0, 1) numbers, one in each of ``n`` equal strata, in random order.

    Stratifying keeps small samples close to the intended profile (so footprint coverage
    fractions vary little from seed to seed) while each value stays random.
    """
    return (rng.permutation(n) + rng.random(n)) / max(n, 1)


def _sample_positions(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ICRS positions: a projected Plummer cluster at the ONC plus the Orion A ridge.

    Exactly ``round(0.75 n)`` sources, chosen at random, belong to the cluster; cluster radii
    and cloud declinations are drawn by stratified sampling.

    Returns
    -------
    ra, dec : ndarray
        Degrees.
    in_cluster : ndarray of bool
    """
    in_cluster = np.zeros(n, dtype=bool)
    in_cluster[rng.permutation(n)[: int(round(_CLUSTER_FRACTION * n))]] = True
    # Projected Plummer: M(<R) = R^2 / (R^2 + a^2), inverted, truncated at R_max.
    a, rmax = _PLUMMER_CORE_DEG, _PLUMMER_MAX_DEG
    u_cluster = _stratified_uniform(rng, int(in_cluster.sum()))
    u = np.zeros(n)
    u[in_cluster] = u_cluster * rmax**2 / (rmax**2 + a**2)
    radius = a * np.sqrt(u / (1.0 - u))
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    cl_dec = ONC_DEC_DEG + radius * np.sin(theta)
    cl_dx = radius * np.cos(theta)  # along RA, on the sky (deg)

    lo, hi = _CLOUD_DEC_RANGE
    cloud_dec = np.full(n, ONC_DEC_DEG)
    cloud_dec[~in_cluster] = lo + (hi - lo) * _stratified_uniform(rng, int((~in_cluster).sum()))
    cloud_dx = _CLOUD_RA_SLOPE * (cloud_dec - ONC_DEC_DEG) * math.cos(math.radians(ONC_DEC_DEG))
    cloud_dx = cloud_dx + rng.normal(0.0, _CLOUD_WIDTH_DEG, n)

    dec = np.where(in_cluster, cl_dec, cloud_dec)
    dx = np.where(in_cluster, cl_dx, cloud_dx)
    ra = np.mod(ONC_RA_DEG + dx / np.cos(np.radians(dec)), 360.0)
    return ra, dec, in_cluster


def _sample_magnitudes(rng: np.random.Generator, n: int) -> np.ndarray:
    """r magnitudes in [12, 20] with dN/dm ~ 10**(0.15 m) (inverse-CDF sampling)."""
    lo, hi = _MAG_RANGE
    span = 10.0 ** (_MAG_SLOPE * (hi - lo)) - 1.0
    return lo + np.log10(1.0 + rng.random(n) * span) / _MAG_SLOPE


def _clipped_normal(rng, mean, sd, bounds, n):
    return np.clip(rng.normal(mean, sd, n), *bounds)


def simulate_sources(n_sources: int = 300, *, seed: int = 0, binary_fraction: float = 0.5,
                     first_id: int = 0,
                     separation_range: tuple[float, float] = _SEP_RANGE,
                     flux_ratio_range: tuple[float, float] = _RATIO_RANGE) -> Table:
    """Draw an Orion-like list of stars, about ``binary_fraction`` of them binaries.

    Parameters
    ----------
    n_sources : int
        Number of sources.
    seed : int
        Non-negative seed; the table depends only on ``(n_sources, seed, binary_fraction)``.
    binary_fraction : float
        Probability that a source is a binary (0-1).
    first_id : int
        The first source's id number: ids run ``first_id, first_id + 1, ...``. Give a second
        sky (another seed) ids of its own to ingest it into the same catalogue, e.g. a test set
        that shares no source with the training set.
    separation_range : (float, float)
        Smallest and largest binary separation (arcsec) of the log-uniform draw; default
        (0.1, 2.5), the science definition of a pair. A narrower range, e.g. (0.85, 1.75)
        around the Pan-STARRS and SDSS FWHMs, gives a sky rich in pairs at the resolution
        limit, where a classifier has most to learn. Every other draw is unchanged.
    flux_ratio_range : (float, float)
        Smallest and largest companion / primary flux ratio of the binaries' uniform draw;
        default (0.1, 1.0). A range of faint companions, e.g. (0.1, 0.3), gives a sky rich in
        companions near the S/N 5 of the label rule. Field stars and every other draw are
        unchanged.

    Returns
    -------
    astropy.table.Table
        One row per source, columns ``source_id`` (zero-padded str), ``ra``, ``dec`` (ICRS deg),
        ``population`` (``"cluster"`` or ``"cloud"``), ``mag_r``, ``color`` (r - Ks),
        ``is_binary`` (bool), ``separation_arcsec``, ``position_angle_deg``, ``flux_ratio``
        (0.0 for singles), ``has_field_star`` (bool), ``field_separation_arcsec``,
        ``field_position_angle_deg``, ``field_flux_ratio`` (r-band flux over the primary's),
        ``field_color`` (0.0 where there is no field star). The distributions are described in
        the module docstring.

    Raises
    ------
    BinarycatError
        For a negative or non-integer ``n_sources`` or ``seed``, a fraction outside [0, 1], or
        a separation range that is not ``0 < smallest <= largest <= 2.5``, or a flux-ratio
        range that is not ``0 < smallest <= largest <= 1``.
    """
    _check_args(n_sources, seed, binary_fraction)
    if int(first_id) != first_id or first_id < 0:
        raise BinarycatError(f"first_id must be a non-negative integer, not {first_id!r}.")
    sep_lo, sep_hi = _check_separation_range(separation_range)
    ratio_lo, ratio_hi = _check_flux_ratio_range(flux_ratio_range)
    n = int(n_sources)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STREAM_SOURCES]))

    # Every column is drawn for all n rows, in a fixed order, so that changing
    # binary_fraction flips membership only and leaves the other draws alone.
    ra, dec, in_cluster = _sample_positions(rng, n)
    mag_r = _sample_magnitudes(rng, n)
    color = _clipped_normal(rng, _COLOR_MEAN, _COLOR_SD, _COLOR_RANGE, n)

    is_binary = rng.random(n) < binary_fraction
    sep = np.exp(rng.uniform(math.log(sep_lo), math.log(sep_hi), n))
    pa = rng.uniform(0.0, 360.0, n)
    ratio = rng.uniform(ratio_lo, ratio_hi, n)

    has_field = rng.random(n) < _FIELD_FRACTION
    f_sep = rng.uniform(*_FIELD_SEP_RANGE, n)
    f_pa = rng.uniform(0.0, 360.0, n)
    f_ratio = rng.uniform(*_RATIO_RANGE, n)
    f_color = _clipped_normal(rng, _FIELD_COLOR_MEAN, _FIELD_COLOR_SD, _FIELD_COLOR_RANGE, n)

    def only(mask, values):
        return np.where(mask, values, 0.0)

    table = Table()
    table["source_id"] = np.array([f"{int(first_id) + i:05d}" for i in range(n)], dtype=str)
    table["ra"] = ra
    table["dec"] = dec
    table["population"] = np.where(in_cluster, "cluster", "cloud").astype("U7")
    table["mag_r"] = mag_r
    table["color"] = color
    table["is_binary"] = is_binary
    table["separation_arcsec"] = only(is_binary, sep)
    table["position_angle_deg"] = only(is_binary, pa)
    table["flux_ratio"] = only(is_binary, ratio)
    table["has_field_star"] = has_field
    table["field_separation_arcsec"] = only(has_field, f_sep)
    table["field_position_angle_deg"] = only(has_field, f_pa)
    table["field_flux_ratio"] = only(has_field, f_ratio)
    table["field_color"] = only(has_field, f_color)
    table["ra"].unit = table["dec"].unit = "deg"
    table["mag_r"].unit = "mag"
    table["separation_arcsec"].unit = table["field_separation_arcsec"].unit = "arcsec"
    table["position_angle_deg"].unit = table["field_position_angle_deg"].unit = "deg"
    table.meta["seed"] = int(seed)
    table.meta["binary_fraction"] = float(binary_fraction)
    table.meta["separation_range_arcsec"] = [sep_lo, sep_hi]
    table.meta["flux_ratio_range"] = [ratio_lo, ratio_hi]
    return table


# ============================================================================================
# Footprints
# ============================================================================================

# (ra, dec, radius) in degrees. HST: the ONC Treasury mosaic and a few deep fields around the
# core; JWST: one NIRCam mosaic on the Trapezium.
_HST_POINTINGS = (
    (83.82, -5.39, 0.20),
    (83.70, -5.16, 0.12),
    (83.95, -5.62, 0.12),
    (83.62, -5.52, 0.08),
    (84.05, -6.10, 0.10),
)
_JWST_POINTINGS = ((83.82, -5.39, 0.07),)
# Spitzer: the IRAC Orion survey (Orion A and B boxes), GLIMPSE, SAGE (LMC, SMC).
_SPITZER_BOXES = ((82.5, 87.0, -9.5, -4.0), (84.5, 87.5, -2.5, 3.0))
_SPITZER_CIRCLES = ((80.9, -69.75, 4.0), (13.2, -72.8, 2.0))
# HSC-SSP Wide: rough boxes (ra_lo, ra_hi, dec_lo, dec_hi); ra_lo > ra_hi wraps through 0.
_HSC_BOXES = (
    (330.0, 40.0, -1.5, 7.0),
    (127.0, 226.0, -2.5, 5.5),
    (29.0, 40.0, -7.0, -1.5),
    (200.0, 252.0, 42.0, 45.0),
)
_SDSS_DEC_EDGE = -5.60  # the simplified SDSS9 footprint's southern edge, through the ONC
_OBLIQUITY_DEG = 23.4392911


def _sep_deg(ra, dec, ra0, dec0):
    """Great-circle separation in degrees (haversine)."""
    ra, dec, ra0, dec0 = (np.radians(v) for v in (ra, dec, ra0, dec0))
    h = np.sin((dec - dec0) / 2) ** 2 + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _in_circles(ra, dec, circles):
    out = np.zeros(np.broadcast(ra, dec).shape, dtype=bool)
    for ra0, dec0, r in circles:
        out |= _sep_deg(ra, dec, ra0, dec0) <= r
    return out


def _in_boxes(ra, dec, boxes):
    out = np.zeros(np.broadcast(ra, dec).shape, dtype=bool)
    for ra_lo, ra_hi, dec_lo, dec_hi in boxes:
        in_ra = (ra >= ra_lo) & (ra <= ra_hi) if ra_lo <= ra_hi else (ra >= ra_lo) | (ra <= ra_hi)
        out |= in_ra & (dec >= dec_lo) & (dec <= dec_hi)
    return out


def _galactic_b(ra, dec):
    """Galactic latitude (deg) from ICRS, via the J2000 north galactic pole."""
    ra_p, dec_p = math.radians(192.85948), math.radians(27.12825)
    ra, dec = np.radians(ra), np.radians(dec)
    sin_b = np.sin(dec) * math.sin(dec_p) + np.cos(dec) * math.cos(dec_p) * np.cos(ra - ra_p)
    return np.degrees(np.arcsin(np.clip(sin_b, -1.0, 1.0)))


def _ecliptic_beta(ra, dec):
    """Ecliptic latitude (deg), mean obliquity J2000."""
    eps = math.radians(_OBLIQUITY_DEG)
    ra, dec = np.radians(ra), np.radians(dec)
    sin_beta = np.sin(dec) * math.cos(eps) - np.cos(dec) * math.sin(eps) * np.sin(ra)
    return np.degrees(np.arcsin(np.clip(sin_beta, -1.0, 1.0)))


def _hashed_footprint(name: str, fraction: float, ra, dec):
    """A fixed pseudo-random set of HEALPix (nside 16) pixels covering ``fraction`` of the sky."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=16, order="nested")
    pix = hp.lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    pix = np.asarray(pix, dtype=np.uint64)
    x = pix + np.uint64(zlib.crc32(name.encode())) * np.uint64(0x9E3779B97F4A7C15)
    # splitmix64 finaliser
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53) < fraction


_FOOTPRINTS: dict[str, Callable] = {
    "ZTF": lambda ra, dec: dec > -30.0,
    "PanSTARRS": lambda ra, dec: dec > -30.0,
    "SkyMapper": lambda ra, dec: dec < 2.0,
    "SDSS9": lambda ra, dec: (
        (dec > _SDSS_DEC_EDGE) & (dec < 70.0) & (np.abs(_galactic_b(ra, dec)) > 15.0)
    ),
    "DECaLS": lambda ra, dec: (dec <= 32.4) & (np.abs(_galactic_b(ra, dec)) > 15.0),
    "HSC": lambda ra, dec: _in_boxes(ra, dec, _HSC_BOXES),
    "HST": lambda ra, dec: _in_circles(ra, dec, _HST_POINTINGS),
    "JWST": lambda ra, dec: _in_circles(ra, dec, _JWST_POINTINGS),
    "Spitzer": lambda ra, dec: (
        _in_boxes(ra, dec, _SPITZER_BOXES)
        | _in_circles(ra, dec, _SPITZER_CIRCLES)
        | ((np.abs(_galactic_b(ra, dec)) < 1.0) & _galactic_l_within(ra, dec, 65.0))
    ),
    "TESS": lambda ra, dec: np.abs(_ecliptic_beta(ra, dec)) > 6.0,
}


def _galactic_l_within(ra, dec, half_width_deg):
    """Whether galactic longitude is within ``half_width_deg`` of l = 0 (GLIMPSE-like)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    l_deg = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg, frame="icrs").galactic.l.deg
    return (l_deg <= half_width_deg) | (l_deg >= 360.0 - half_width_deg)


def footprint_covers(survey: str | Survey, ra, dec) -> np.ndarray:
    """Whether the simulated footprint of ``survey`` covers the positions ``(ra, dec)``.

    A deterministic function of position. All-sky surveys cover everything; PanSTARRS and ZTF
    cover Dec > -30; SDSS9 is simplified to Dec > -5.6 (cutting through the ONC), Dec < 70 and
    |b| > 15; HST is five circular pointings (0.08-0.2 deg radius) on and around the ONC core;
    JWST one 0.07 deg pointing on the Trapezium; Spitzer the IRAC Orion survey boxes, GLIMPSE and
    the Magellanic Clouds; SkyMapper Dec < 2; DECaLS Dec <= 32.4 with |b| > 15; HSC rough SSP
    Wide boxes (none in Orion); TESS |ecliptic latitude| > 6. A survey added to the registry
    later without a rule gets a fixed pseudo-random set of HEALPix pixels covering its
    ``sky_fraction``.

    Parameters
    ----------
    survey : str or Survey
        Name, alias or `Survey`.
    ra, dec : float or array_like
        ICRS degrees; broadcast against each other.

    Returns
    -------
    numpy.ndarray of bool
        The broadcast shape of ``ra`` and ``dec`` (0-d for scalars).
    """
    s = get_survey(survey)
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    shape = np.broadcast(ra, dec).shape
    if s.sky == "all-sky":
        return np.ones(shape, dtype=bool)
    rule = _FOOTPRINTS.get(s.name)
    if rule is None:
        out = _hashed_footprint(s.name, s.sky_fraction, *np.broadcast_arrays(ra, dec))
    else:
        out = rule(ra, dec)
    return np.broadcast_to(np.asarray(out, dtype=bool), shape).copy()


# ============================================================================================
# Rendering
# ============================================================================================


def band_magnitude(mag_r, color, wavelength_um: float):
    """Magnitude in a band at ``wavelength_um`` for a star of r magnitude ``mag_r``, colour r - Ks.

    The colour term is linear in ``log10(wavelength)``, zero at r (0.617 um) and ``color`` at
    Ks (2.159 um), capped at 1.5 x ``color`` further to the red; blue bands are fainter.
    """
    lever = math.log10(wavelength_um / _R_WAVE_UM) / math.log10(_KS_WAVE_UM / _R_WAVE_UM)
    return mag_r - np.asarray(color) * min(lever, _COLOR_LEVER_MAX)


def filter_fwhm_arcsec(survey: str | Survey, filt: str | Filter) -> float:
    """PSF FWHM of ``survey`` in band ``filt``: ``max(survey.fwhm_arcsec, 1.22 lambda / D)``."""
    s = get_survey(survey)
    f = filt if isinstance(filt, Filter) else s.filter(filt)
    return max(s.fwhm_arcsec, s.diffraction_limit_at(f.wavelength_um))


def stamp_size(survey: str | Survey, fov_arcsec: float = 10.0) -> int:
    """Side of a stamp in pixels: ``round(fov_arcsec / pixel_scale)`` (halves up), at least 9."""
    s = get_survey(survey)
    return max(_MIN_STAMP_PIX, int(math.floor(fov_arcsec / s.pixel_scale_arcsec + 0.5)))


def stamp_path(out_dir, source_id: str, survey: str | Survey, filt: str) -> Path:
    """``out_dir/<Survey>/<source_id>_<Survey>_<filter>.fits``."""
    name = get_survey(survey).name
    return Path(out_dir) / name / f"{source_id}_{name}_{filt}.fits"


def _stamp_wcs(ra: float, dec: float, n_pix: int, scale_arcsec: float) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(n_pix + 1) / 2.0, (n_pix + 1) / 2.0]
    w.wcs.cdelt = [-scale_arcsec / 3600.0, scale_arcsec / 3600.0]
    w.wcs.radesys = "ICRS"
    return w


@dataclass(frozen=True)
class _PSF:
    """A circular PSF on the pixel grid: ``profile`` of FWHM ``fwhm_pix`` pixels (``beta``: Moffat)."""

    profile: str
    fwhm_pix: float
    beta: float = DEFAULT_MOFFAT_BETA


def _check_psf(psf: str, beta) -> tuple[str, float | tuple[float, float]]:
    """The profile name, and beta: one number, or a (min, max) range drawn per source and survey."""
    name = str(psf).strip().lower()
    if name not in PSF_PROFILES:
        raise BinarycatError(f"Unknown PSF profile {psf!r}; choose one of {', '.join(PSF_PROFILES)}.")
    values = list(beta) if isinstance(beta, (tuple, list)) else [beta]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        values = [math.nan]
    if len(values) not in (1, 2) or not all(math.isfinite(v) and v > 1.0 for v in values):
        raise BinarycatError(f"The Moffat beta must be a number above 1 (its flux is finite only then), "
                             f"or a (min, max) pair of them, not {beta!r}.")
    if len(values) == 2:
        if values[0] > values[1]:
            raise BinarycatError(f"The Moffat beta range must be (min, max) with min <= max, not {beta!r}.")
        return name, (values[0], values[1])
    return name, values[0]


def _stamp_beta(seed: int, source_index: int, survey: Survey, beta) -> float:
    """The Moffat beta of one (source, survey): ``beta`` itself, or a uniform draw from its range.

    The draw has its own stream, ``SeedSequence([seed, 2, source_index, survey_index])``, so
    the pixels' random numbers are those of a sky with a fixed beta.
    """
    if not isinstance(beta, tuple):
        return beta
    survey_index = list(SURVEYS).index(survey.name)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _STREAM_PSF, source_index, survey_index]))
    return float(rng.uniform(beta[0], beta[1]))


def _pixel_profiles(n_pix: int, centres: np.ndarray, sigma_pix: float) -> np.ndarray:
    """1-D Gaussian profiles integrated over unit pixels.

    Returns an array of shape (n_centres, n_pix); each row sums to <= 1 (flux off the edge is lost).
    """
    edges = np.arange(n_pix + 1, dtype=float) - 0.5
    cdf = 0.5 * erf((edges[None, :] - centres[:, None]) / (math.sqrt(2.0) * sigma_pix))
    return np.diff(cdf, axis=1)


def _moffat_image(n_pix: int, x: float, y: float, fwhm_pix: float, beta: float) -> np.ndarray:
    """A unit-flux circular Moffat at pixel position (x, y), averaged over each unit pixel.

    Within `_MOFFAT_WINDOW_FWHM` FWHM of the star each pixel is the mean of k x k sub-pixel
    samples, k giving `_MOFFAT_SUBPIXELS_FWHM` samples per FWHM; beyond, where the profile is
    nearly linear across a pixel, the pixel-centre value.
    """
    gamma = fwhm_pix / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    norm = (beta - 1.0) / (math.pi * gamma**2)
    grid = np.arange(n_pix, dtype=float)
    image = norm * (1.0 + ((grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2) / gamma**2) ** -beta
    k = max(1, math.ceil(_MOFFAT_SUBPIXELS_FWHM / fwhm_pix))
    half = math.ceil(_MOFFAT_WINDOW_FWHM * fwhm_pix)
    x0, x1 = max(0, math.floor(x) - half), min(n_pix, math.ceil(x) + half + 1)
    y0, y1 = max(0, math.floor(y) - half), min(n_pix, math.ceil(y) + half + 1)
    if k > 1 and x0 < x1 and y0 < y1:
        sub = (np.arange(k) + 0.5) / k - 0.5
        xs = (grid[x0:x1, None] + sub[None, :]).ravel() - x
        ys = (grid[y0:y1, None] + sub[None, :]).ravel() - y
        fine = (1.0 + (xs[None, :] ** 2 + ys[:, None] ** 2) / gamma**2) ** -beta
        image[y0:y1, x0:x1] = norm * fine.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))
    return image


def _render_model(n_pix, xs, ys, fluxes, psf: _PSF):
    """Noise-free image of point sources at 0-based pixel positions ``xs, ys`` (columns, rows)."""
    if psf.profile == "gaussian":
        sigma_pix = psf.fwhm_pix / _GAUSS_FWHM_PER_SIGMA
        px = _pixel_profiles(n_pix, np.asarray(xs, float), sigma_pix)
        py = _pixel_profiles(n_pix, np.asarray(ys, float), sigma_pix)
        return (py.T * np.asarray(fluxes, float)) @ px
    image = np.zeros((n_pix, n_pix))
    for x, y, flux in zip(xs, ys, fluxes):
        image += float(flux) * _moffat_image(n_pix, float(x), float(y), psf.fwhm_pix, psf.beta)
    return image


@lru_cache(maxsize=256)
def _sky_level(n_pix: int, psf: _PSF) -> float:
    """Sky level (counts per pixel) giving a centred magnitude-20 star an optimal S/N of 15.

    The noise variance of a pixel is ``sky + model`` (Poisson, gain 1), so the optimal S/N of a
    star of flux F is ``sqrt(sum((F p)**2 / (sky + F p)))`` over the pixel fractions ``p``.
    """
    c = (n_pix - 1) / 2.0
    flux = 10.0 ** (-0.4 * (_REF_MAG - _MAG_ZP))
    star = _render_model(n_pix, [c], [c], [flux], psf).ravel()

    def excess(log_sky):
        return float(np.sum(star**2 / (math.exp(log_sky) + star))) - _REF_SNR**2

    return math.exp(brentq(excess, -20.0, 40.0, xtol=1e-12))


@dataclass(frozen=True)
class _Source:
    index: int
    source_id: str
    ra: float
    dec: float
    mag_r: float
    color: float
    is_binary: bool
    separation: float
    position_angle: float
    flux_ratio: float
    has_field_star: bool
    field_separation: float
    field_position_angle: float
    field_flux_ratio: float
    field_color: float

    @classmethod
    def from_row(cls, row: Mapping) -> _Source:
        sid = str(row["source_id"]).strip()
        if not sid.isdigit():
            raise BinarycatError(f"source_id must be digits (like '00222'), not {sid!r}.")
        sid = sid.zfill(5)
        return cls(
            int(sid), sid, float(row["ra"]), float(row["dec"]), float(row["mag_r"]),
            float(row["color"]), bool(row["is_binary"]), float(row["separation_arcsec"]),
            float(row["position_angle_deg"]), float(row["flux_ratio"]), bool(row["has_field_star"]),
            float(row["field_separation_arcsec"]), float(row["field_position_angle_deg"]),
            float(row["field_flux_ratio"]), float(row["field_color"]),
        )


def _offset_pix(sep_arcsec, pa_deg, scale_arcsec):
    """Tangent-plane offset (dx, dy) in pixels of a point at (sep, PA east of north); east is -x."""
    pa = math.radians(pa_deg)
    return -sep_arcsec * math.sin(pa) / scale_arcsec, sep_arcsec * math.cos(pa) / scale_arcsec


def _stamp_rng(seed: int, source_index: int, survey: Survey, filter_index: int):
    """The independent generator of one (source, survey, filter) stamp."""
    survey_index = list(SURVEYS).index(survey.name)
    entropy = [int(seed), _STREAM_STAMPS, source_index, survey_index, filter_index]
    ss = np.random.SeedSequence(entropy)
    return np.random.default_rng(ss)


def _render(src: _Source, survey: Survey, filter_index: int, seed: int, n_pix: int,
            base_header: fits.Header, *, scale: float | None = None,
            offset: tuple[float, float] = (0.0, 0.0), psf: str = "gaussian",
            moffat_beta: float | tuple[float, float] = DEFAULT_MOFFAT_BETA) -> tuple[np.ndarray, fits.Header, float]:
    """Render one stamp; return (float32 image, header, companion peak S/N).

    ``scale`` (arcsec/pixel) defaults to the survey's native scale; ``offset`` is the primary's
    (x, y) offset in pixels from the stamp centre (companion and field star follow it); ``psf``
    and ``moffat_beta`` are checked by the caller (`_check_psf`).
    """
    f = survey.filters[filter_index]
    if scale is None:
        scale = survey.pixel_scale_arcsec
    fwhm = filter_fwhm_arcsec(survey, f)
    if psf == "moffat":
        moffat_beta = _stamp_beta(seed, src.index, survey, moffat_beta)
    shape = _PSF(psf, fwhm / scale, moffat_beta if psf == "moffat" else DEFAULT_MOFFAT_BETA)
    c = (n_pix - 1) / 2.0
    x0, y0 = c + offset[0], c + offset[1]  # adding 0.0 is exact: the default is the centre

    flux = 10.0 ** (-0.4 * (float(band_magnitude(src.mag_r, src.color, f.wavelength_um)) - _MAG_ZP))
    xs, ys, fluxes = [x0], [y0], [flux]
    if src.is_binary:
        dx, dy = _offset_pix(src.separation, src.position_angle, scale)
        xs.append(x0 + dx)
        ys.append(y0 + dy)
        fluxes.append(flux * src.flux_ratio)
    if src.has_field_star:
        field_mag_r = src.mag_r - 2.5 * math.log10(src.field_flux_ratio)
        f_mag = float(band_magnitude(field_mag_r, src.field_color, f.wavelength_um))
        dx, dy = _offset_pix(src.field_separation, src.field_position_angle, scale)
        xs.append(x0 + dx)
        ys.append(y0 + dy)
        fluxes.append(10.0 ** (-0.4 * (f_mag - _MAG_ZP)))

    model = _render_model(n_pix, xs, ys, fluxes, shape)
    sky = _sky_level(n_pix, shape)
    sky_sigma = math.sqrt(sky)
    noise_sd = np.sqrt(sky + model)

    companion_snr = 0.0
    if src.is_binary:
        comp = _render_model(n_pix, xs[1:2], ys[1:2], fluxes[1:2], shape)
        k = int(np.argmax(comp))
        companion_snr = float(comp.flat[k] / noise_sd.flat[k])

    rng = _stamp_rng(seed, src.index, survey, filter_index)
    image = (sky + model + rng.standard_normal(model.shape) * noise_sd).astype(np.float32)

    header = base_header.copy()
    header["SURVEY"] = (survey.name, "simulated survey")
    header["FILTER"] = (f.name, "band")
    header["SRCID"] = (src.source_id, "binarycat source id")
    header["FWHM"] = (round(fwhm, 6), "[arcsec] PSF FWHM in this band")
    header["PSF"] = (psf.upper(), "PSF profile")
    if psf == "moffat":
        header["PSFBETA"] = (float(moffat_beta), "Moffat beta: (1 + r**2/gamma**2)**-beta")
    header["MAGZP"] = (_MAG_ZP, "[mag] mag = MAGZP - 2.5 log10(counts)")
    header["SKYLEV"] = (round(sky, 6), "[count] sky level per pixel")
    header["SKYSIG"] = (round(sky_sigma, 6), "[count] sky noise sigma per pixel")
    header["BUNIT"] = ("count", "pixel unit")
    header["SIMSEED"] = (int(seed), "simulation seed")
    return image, header, companion_snr


def _base_header(src: _Source, survey: Survey, n_pix: int) -> fits.Header:
    return _stamp_wcs(src.ra, src.dec, n_pix, survey.pixel_scale_arcsec).to_header()


def render_stamp(source: Mapping, survey: str | Survey, filt: str, *, seed: int = 0,
                 fov_arcsec: float = 10.0, n_pix: int | None = None,
                 pixel_scale_arcsec: float | None = None,
                 center: tuple[float, float] | None = None,
                 psf: str = "gaussian", moffat_beta: float | tuple[float, float] = DEFAULT_MOFFAT_BETA,
                 ) -> tuple[np.ndarray, fits.Header, float]:
    """Render one stamp exactly as `simulate_sky` writes it.

    Parameters
    ----------
    source : Mapping
        A row of `simulate_sources` (an astropy Row or a dict with the same columns). Its
        ``source_id`` (digits) gives the random stream, so a row of the table simulated with
        ``seed`` reproduces the file `simulate_sky` wrote for it.
    survey : str or Survey
    filt : str
        Band name of ``survey``.
    seed : int
        The simulation seed.
    fov_arcsec : float
        Stamp side in arcseconds (ignored when ``n_pix`` is given).
    n_pix : int, optional
        Stamp side in pixels, overriding ``stamp_size(survey, fov_arcsec)``.
    pixel_scale_arcsec : float, optional
        Pixel scale (arcsec/pixel), overriding the survey's native scale; the PSF FWHM in
        arcseconds stays the band's, and the sky level is set for the new pixel grid as usual.
    center : (float, float), optional
        ICRS (RA, Dec) in degrees of the stamp centre (CRVAL), overriding the source position;
        the source is then drawn at its tangent-plane offset from that centre. The random
        stream still comes from the source, so any grid is deterministic.
    psf : {"gaussian", "moffat"}
        The PSF profile (see the module docstring).
    moffat_beta : float or (float, float)
        The Moffat power index (above 1); used only with ``psf="moffat"``. A (min, max) pair
        draws one beta per source and survey, uniform in that range (header PSFBETA says which).

    With the three left at None the stamp is exactly the one `simulate_sky` writes with the
    same ``psf`` and ``moffat_beta``.

    Returns
    -------
    image : numpy.ndarray
        2-D float32 image.
    header : astropy.io.fits.Header
        WCS and the SURVEY, FILTER, SRCID, FWHM, SIMSEED, ... keywords.
    companion_snr : float
        The companion's peak S/N in this band (0.0 for singles).
    """
    s = get_survey(survey)
    f = s.filter(filt)
    src = _Source.from_row(source)
    psf, moffat_beta = _check_psf(psf, moffat_beta)
    profile = {"psf": psf, "moffat_beta": moffat_beta}
    if n_pix is None and pixel_scale_arcsec is None and center is None:
        n_pix = stamp_size(s, fov_arcsec)
        return _render(src, s, s.filters.index(f), int(seed), n_pix, _base_header(src, s, n_pix), **profile)
    if n_pix is None:
        n_pix = stamp_size(s, fov_arcsec)
    n_pix = int(n_pix)
    if n_pix < 1:
        raise BinarycatError(f"n_pix must be a positive integer, not {n_pix!r}.")
    scale = s.pixel_scale_arcsec if pixel_scale_arcsec is None else float(pixel_scale_arcsec)
    if not (math.isfinite(scale) and scale > 0.0):
        raise BinarycatError(f"pixel_scale_arcsec must be positive, not {pixel_scale_arcsec!r}.")
    ra0, dec0 = (src.ra, src.dec) if center is None else (float(center[0]), float(center[1]))
    w = _stamp_wcs(ra0, dec0, n_pix, scale)
    offset = (0.0, 0.0)
    if center is not None:
        x, y = w.wcs_world2pix(src.ra, src.dec, 0)
        c = (n_pix - 1) / 2.0
        offset = (float(x) - c, float(y) - c)
    return _render(src, s, s.filters.index(f), int(seed), n_pix, w.to_header(),
                   scale=scale, offset=offset, **profile)


def resolved_label(is_binary, separation_arcsec, fwhm_arcsec, companion_snr):
    """The truth label: 1 where a binary is resolved in a survey, else 0.

    ``is_binary and separation_arcsec >= fwhm_arcsec and companion_snr >= 5``. Works on scalars
    (returns an int) and on arrays (returns an int8 array).
    """
    label = (
        np.asarray(is_binary, dtype=bool)
        & (np.asarray(separation_arcsec, dtype=float) >= np.asarray(fwhm_arcsec, dtype=float))
        & (np.asarray(companion_snr, dtype=float) >= _LABEL_SNR)
    )
    return int(label) if label.ndim == 0 else label.astype(np.int8)


# ============================================================================================
# The whole sky
# ============================================================================================


def _resolve_surveys(surveys: Iterable[str | Survey] | str) -> list[Survey]:
    if isinstance(surveys, (str, Survey)):
        surveys = [surveys]
    out: list[Survey] = []
    for name in surveys:
        s = get_survey(name.strip() if isinstance(name, str) else name)
        if s not in out:
            out.append(s)
    return out


def _csv_ready(table: Table) -> Table:
    """A copy with bool columns as 0/1 integers (portable across CSV readers)."""
    t = table.copy(copy_data=False)
    for name in t.colnames:
        if t[name].dtype.kind == "b":
            t[name] = np.asarray(t[name], dtype=np.int8)
    t.meta.clear()
    return t


@dataclass(frozen=True)
class _StampSettings:
    out_dir: Path
    seed: int
    sizes: Mapping[str, int]
    psf: str
    moffat_beta: float | tuple[float, float]


def _write_source(src: _Source, surveys: Iterable[Survey], st: _StampSettings) -> list[tuple]:
    """Write one source's FITS stamps in ``surveys``; its truth rows, one per survey."""
    rows = []
    for s in surveys:
        n_pix = st.sizes[s.name]
        base = _base_header(src, s, n_pix)
        best_snr = 0.0
        for k, f in enumerate(s.filters):
            image, header, snr = _render(src, s, k, st.seed, n_pix, base, psf=st.psf, moffat_beta=st.moffat_beta)
            fits.PrimaryHDU(data=image, header=header).writeto(
                stamp_path(st.out_dir, src.source_id, s, f.name), overwrite=True
            )
            best_snr = max(best_snr, snr)
        best_snr = round(best_snr, 4)  # as written to truth.csv, so the file obeys the rule
        label = resolved_label(src.is_binary, src.separation, s.fwhm_arcsec, best_snr)
        rows.append((src.source_id, s.name, label, int(src.is_binary), src.separation,
                     s.fwhm_arcsec, src.flux_ratio, best_snr))
    return rows


def _write_sources(jobs: list[tuple]) -> list[list[tuple]]:
    return [_write_source(src, surveys, settings) for src, surveys, settings in jobs]


def simulate_sky(
    out_dir,
    *,
    n_sources: int = 300,
    surveys: Iterable[str | Survey] = DEFAULT_SURVEYS,
    seed: int = 0,
    fov_arcsec: float = 10.0,
    binary_fraction: float = 0.5,
    first_id: int = 0,
    separation_range: tuple[float, float] = _SEP_RANGE,
    flux_ratio_range: tuple[float, float] = _RATIO_RANGE,
    psf: str = "gaussian",
    moffat_beta: float | tuple[float, float] = DEFAULT_MOFFAT_BETA,
    progress: Callable[[int, int], object] | None = None,
    workers: int | None = None,
) -> SimulationResult:
    """Simulate an Orion-like sky and write its FITS stamps, ``sources.csv`` and ``truth.csv``.

    Parameters
    ----------
    out_dir : str or Path
        Output directory, created if missing.
    n_sources : int
        Number of sources (see `simulate_sources`).
    surveys : iterable of str or Survey
        Survey names or aliases; repeats are dropped, order is kept.
    seed : int
        Non-negative seed; the same arguments give byte-identical files.
    fov_arcsec : float
        Stamp side in arcseconds (stamps are at least 9 pixels a side).
    binary_fraction : float
        Fraction of binaries (0-1).
    first_id : int
        The first source id number (see `simulate_sources`).
    separation_range : (float, float)
        Smallest and largest binary separation, arcsec (see `simulate_sources`).
    flux_ratio_range : (float, float)
        Smallest and largest companion / primary flux ratio (see `simulate_sources`).
    psf : {"gaussian", "moffat"}
        The PSF profile of every stamp (see the module docstring); the truth labels follow the
        same rule either way.
    moffat_beta : float or (float, float)
        The Moffat power index (above 1); used only with ``psf="moffat"``. A (min, max) pair
        draws one beta per source and survey, uniform in that range (header PSFBETA says which).
    progress : callable, optional
        Called as ``progress(n_done, n_total)`` with the number of FITS files written so far
        and the total to write: once with ``n_done = 0`` and then after each (source, survey).
    workers : int, optional
        Processes that render the stamps (None or 0: every core, `binarycat.parallel.allowed_cores`).
        Each stamp's noise comes from its own seed, so the files are byte-identical whatever the
        number of workers.

    Returns
    -------
    SimulationResult

    Raises
    ------
    UnknownSurveyError
        For a survey name the registry does not know.
    BinarycatError
        For bad numeric arguments.
    """
    if not fov_arcsec > 0:
        raise BinarycatError(f"fov_arcsec must be positive, not {fov_arcsec!r}.")
    psf, moffat_beta = _check_psf(psf, moffat_beta)
    survey_list = _resolve_surveys(surveys)
    table = simulate_sources(n_sources, seed=seed, binary_fraction=binary_fraction, first_id=first_id,
                             separation_range=separation_range, flux_ratio_range=flux_ratio_range)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    ra = np.asarray(table["ra"], dtype=float)
    dec = np.asarray(table["dec"], dtype=float)
    covers = {s.name: footprint_covers(s, ra, dec) for s in survey_list}
    n_total = int(sum(int(covers[s.name].sum()) * len(s.filters) for s in survey_list))
    sizes = {s.name: stamp_size(s, fov_arcsec) for s in survey_list}
    for s in survey_list:
        if covers[s.name].any():
            (out_dir / s.name).mkdir(exist_ok=True)

    settings = _StampSettings(out_dir, int(seed), sizes, psf, moffat_beta)
    jobs = []
    for i, row in enumerate(table):
        src = _Source.from_row(row)
        covering = tuple(s for s in survey_list if covers[s.name][i])
        if covering:
            jobs.append((src, covering, settings))
    files_by_survey = {s.name: 0 for s in survey_list}
    n_done = 0

    def count(chunk_rows):
        nonlocal n_done
        for rows in chunk_rows:
            for row in rows:
                n_files = len(get_survey(row[1]).filters)
                files_by_survey[row[1]] += n_files
                n_done += n_files
                if progress is not None:
                    progress(n_done, n_total)

    if progress is not None:
        progress(0, n_total)
    n_workers = worker_count(workers, len(jobs), _MIN_SOURCES_PER_WORKER)
    truth_rows = [row for rows in map_chunks(_write_sources, jobs, n_workers, done=count) for row in rows]

    sources_csv = out_dir / "sources.csv"
    truth_csv = out_dir / "truth.csv"
    _csv_ready(table).write(sources_csv, format="ascii.csv", overwrite=True)
    _truth_table(truth_rows).write(truth_csv, format="ascii.csv", overwrite=True)
    return SimulationResult(
        out_dir=out_dir,
        sources_csv=sources_csv,
        truth_csv=truth_csv,
        n_sources=len(table),
        n_files=n_done,
        surveys=tuple(s.name for s in survey_list),
        files_by_survey=files_by_survey,
    )


def _truth_table(rows) -> Table:
    dtypes = ("U5", "U16", np.int8, np.int8, float, float, float, float)
    if rows:
        columns = list(zip(*rows))
        # ids longer than five digits (simulate_sky(first_id=...)) must not be cut to "U5"
        cols = [np.asarray(c, dtype=str if d == "U5" else d) for c, d in zip(columns, dtypes)]
        return Table(cols, names=_TRUTH_COLUMNS)
    return Table(names=_TRUTH_COLUMNS, dtype=dtypes)


# ============================================================================================
# Reading back
# ============================================================================================


def _read_csv(path) -> Table:
    return Table.read(Path(path), format="ascii.csv", converters={"source_id": str, "survey": str})


def read_sources(path) -> Table:
    """Read ``sources.csv`` back: ``source_id`` stays a zero-padded string, 0/1 flags turn bool."""
    table = _read_csv(path)
    for name in _BOOL_COLUMNS:
        if name in table.colnames:
            table[name] = np.asarray(table[name]).astype(bool)
    return table


def read_truth(path) -> Table:
    """Read ``truth.csv`` back with ``source_id`` and ``survey`` as strings (zeros kept).

    ``label`` and ``is_binary`` stay 0/1 integers, ready to use as training labels.
    """
    return _read_csv(path)
