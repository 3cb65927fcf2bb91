"""TESS SPOC light-curve FITS files: reading them, and writing files of the same layout.

The layout is the one MAST serves for 2-minute SPOC light curves (``*-s_lc.fits``):

- HDU 0 ``PRIMARY``: header only, with ``TICID``, ``SECTOR``, ``CAMERA``, ``CCD``,
  ``RA_OBJ``/``DEC_OBJ`` (ICRS degrees), ``TESSMAG``, ``OBJECT = 'TIC nnn'``;
- HDU 1 ``LIGHTCURVE``: a binary table with ``TIME`` (BTJD = BJD - 2457000, days),
  ``PDCSAP_FLUX`` and ``PDCSAP_FLUX_ERR`` (e-/s) and ``QUALITY`` (int32 bit mask, 0 = good),
  among other columns; ``BJDREFI``/``BJDREFF`` in its header;
- HDU 2 ``APERTURE``: the aperture image (not read here).

`write_spoc_lightcurve` writes the subset of that layout binarycat reads, so the simulator
and the tests produce files a real SPOC reader accepts, and `read_spoc_lightcurve` reads
real files as well.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from binarycat.errors import BadFitsError

__all__ = [
    "TessLightCurve",
    "read_spoc_lightcurve",
    "write_spoc_lightcurve",
    "spoc_filename",
    "CADENCE_DAYS",
    "BTJD_OFFSET",
]

CADENCE_DAYS = 120.0 / 86400.0  # 2-minute cadence
BTJD_OFFSET = 2457000.0  # TIME = BJD - BTJD_OFFSET


@dataclass
class TessLightCurve:
    """One sector of one TESS target, as read from a SPOC light-curve file.

    Attributes
    ----------
    tic_id : int
        TESS Input Catalog id.
    sector : int
    ra, dec : float
        Target position, ICRS degrees (``RA_OBJ``, ``DEC_OBJ``).
    time : ndarray of float64
        BTJD days; may hold NaN at cadences without a time stamp.
    flux, flux_err : ndarray of float32
        ``PDCSAP_FLUX`` and its error, e-/s; NaN where PDC gapped the data.
    quality : ndarray of int32
        SPOC quality bit mask, 0 = no flag set.
    tessmag : float or None
    camera, ccd : int or None
    path : Path or None
        The file it came from.
    """

    tic_id: int
    sector: int
    ra: float
    dec: float
    time: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    quality: np.ndarray
    tessmag: float | None = None
    camera: int | None = None
    ccd: int | None = None
    path: Path | None = None

    def __post_init__(self):
        self.time = np.ascontiguousarray(self.time, dtype=np.float64)
        self.flux = np.ascontiguousarray(self.flux, dtype=np.float32)
        self.flux_err = np.ascontiguousarray(self.flux_err, dtype=np.float32)
        self.quality = np.ascontiguousarray(self.quality, dtype=np.int32)
        n = self.time.shape
        if self.time.ndim != 1 or self.flux.shape != n or self.flux_err.shape != n or self.quality.shape != n:
            raise ValueError("time, flux, flux_err and quality must be 1-D arrays of one length")

    @property
    def n_points(self) -> int:
        return int(self.time.size)

    @property
    def n_good(self) -> int:
        """Cadences with QUALITY == 0 and finite time and flux."""
        return int(np.count_nonzero(
            (self.quality == 0) & np.isfinite(self.time) & np.isfinite(self.flux)))


def spoc_filename(tic_id: int, sector: int, timestamp: str = "2019000000000") -> str:
    """The SPOC file name of a 2-minute light curve, e.g.
    ``tess2019000000000-s0004-0000000025155310-0124-s_lc.fits``."""
    return f"tess{timestamp}-s{int(sector):04d}-{int(tic_id):016d}-0000-s_lc.fits"


def read_spoc_lightcurve(path: str | Path) -> TessLightCurve:
    """Read a TESS SPOC 2-minute light-curve FITS file.

    Raises
    ------
    BadFitsError
        When the file is missing, not FITS, truncated, or lacks the light-curve table, its
        columns, or the TICID/SECTOR/RA_OBJ/DEC_OBJ keywords; the message says which.
    """
    path = Path(path)
    if not path.exists():
        raise BadFitsError(path, "no such file")
    if path.is_dir():
        raise BadFitsError(path, "is a directory, not a FITS file")
    if path.stat().st_size == 0:
        raise BadFitsError(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                hdul.verify("silentfix")
                return _from_hdulist(hdul, path)
    except BadFitsError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        reason = str(exc).split("\n")[0] or type(exc).__name__
        if any(w in reason.lower() for w in ("truncated", "not enough", "reshape")):
            reason = "truncated FITS file"
        elif "SIMPLE" in reason:
            raise BadFitsError(path, "not a FITS file") from None
        raise BadFitsError(path, f"not a readable FITS light curve ({reason})") from None


def _from_hdulist(hdul: fits.HDUList, path: Path) -> TessLightCurve:
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
        raise BadFitsError(path, "has no light-curve table in HDU 1 (is it a TESS SPOC *_lc.fits file?)")
    primary, table = hdul[0].header, hdul[1]
    header = {**{k: primary[k] for k in primary if k}, **{k: table.header[k] for k in table.header if k}}
    missing = [k for k in ("TICID", "SECTOR", "RA_OBJ", "DEC_OBJ") if header.get(k) in (None, "")]
    if missing:
        raise BadFitsError(path, f"lacks the header keyword(s) {', '.join(missing)}")
    data = table.data
    if data is None:
        raise BadFitsError(path, "has an empty light-curve table")
    names = {n.upper() for n in data.columns.names}
    need = ("TIME", "PDCSAP_FLUX", "PDCSAP_FLUX_ERR", "QUALITY")
    lacking = [c for c in need if c not in names]
    if lacking:
        raise BadFitsError(path, f"light-curve table lacks the column(s) {', '.join(lacking)}")
    try:
        tic_id = int(header["TICID"])
        sector = int(header["SECTOR"])
        ra, dec = float(header["RA_OBJ"]), float(header["DEC_OBJ"])
    except (TypeError, ValueError):
        raise BadFitsError(path, "has a non-numeric TICID, SECTOR, RA_OBJ or DEC_OBJ") from None
    if not (np.isfinite(ra) and np.isfinite(dec) and -90 <= dec <= 90):
        raise BadFitsError(path, f"has an invalid target position RA_OBJ={ra}, DEC_OBJ={dec}")

    def opt(key, cast):
        try:
            value = header.get(key)
            return None if value in (None, "") else cast(value)
        except (TypeError, ValueError):
            return None

    quality = np.asarray(data["QUALITY"])
    return TessLightCurve(
        tic_id=tic_id, sector=sector, ra=ra % 360.0, dec=dec,
        time=np.asarray(data["TIME"], dtype=np.float64),
        flux=np.asarray(data["PDCSAP_FLUX"], dtype=np.float32),
        flux_err=np.asarray(data["PDCSAP_FLUX_ERR"], dtype=np.float32),
        quality=np.where(np.isfinite(quality), quality, 0).astype(np.int32) if quality.dtype.kind == "f" else quality,
        tessmag=opt("TESSMAG", float), camera=opt("CAMERA", int), ccd=opt("CCD", int), path=path,
    )


def write_spoc_lightcurve(path: str | Path, lc: TessLightCurve, *, overwrite: bool = True) -> Path:
    """Write ``lc`` as a SPOC-layout light-curve FITS file (the columns binarycat reads and
    the usual companions ``TIMECORR``, ``CADENCENO``, ``SAP_FLUX``), atomically.

    Parameters
    ----------
    path : path
        Destination; its folder is created.
    lc : TessLightCurve
    overwrite : bool
        Replace an existing file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    primary = fits.Header()
    primary["TELESCOP"] = "TESS"
    primary["INSTRUME"] = "TESS Photometer"
    primary["OBJECT"] = f"TIC {lc.tic_id}"
    primary["TICID"] = (int(lc.tic_id), "unique tess target identifier")
    primary["SECTOR"] = (int(lc.sector), "Observing sector")
    primary["CAMERA"] = (int(lc.camera or 1), "Camera number")
    primary["CCD"] = (int(lc.ccd or 1), "CCD chip number")
    primary["RA_OBJ"] = (float(lc.ra), "[deg] right ascension")
    primary["DEC_OBJ"] = (float(lc.dec), "[deg] declination")
    primary["EQUINOX"] = 2000.0
    primary["RADESYS"] = "ICRS"
    if lc.tessmag is not None:
        primary["TESSMAG"] = (float(lc.tessmag), "[mag] TESS magnitude")
    finite_t = lc.time[np.isfinite(lc.time)]
    if finite_t.size:
        primary["TSTART"] = float(finite_t.min())
        primary["TSTOP"] = float(finite_t.max())
    n = lc.n_points
    cadence0 = 0 if not finite_t.size else int(round(finite_t.min() / CADENCE_DAYS))
    cols = [
        fits.Column("TIME", "D", unit="BJD - 2457000, days", array=lc.time),
        fits.Column("TIMECORR", "E", unit="d", array=np.zeros(n, np.float32)),
        fits.Column("CADENCENO", "J", array=np.arange(cadence0, cadence0 + n, dtype=np.int32)),
        fits.Column("SAP_FLUX", "E", unit="e-/s", array=lc.flux),
        fits.Column("SAP_FLUX_ERR", "E", unit="e-/s", array=lc.flux_err),
        fits.Column("PDCSAP_FLUX", "E", unit="e-/s", array=lc.flux),
        fits.Column("PDCSAP_FLUX_ERR", "E", unit="e-/s", array=lc.flux_err),
        fits.Column("QUALITY", "J", array=lc.quality),
    ]
    table = fits.BinTableHDU.from_columns(cols, name="LIGHTCURVE")
    table.header["BJDREFI"] = (2457000, "integer part of BTJD reference date")
    table.header["BJDREFF"] = (0.0, "fraction of the day in BTJD reference date")
    table.header["TIMEUNIT"] = "d"
    table.header["TIMESYS"] = "TDB"
    aperture = fits.ImageHDU(np.full((11, 11), 1, np.int32), name="APERTURE")
    aperture.data[4:7, 4:7] |= 2
    hdul = fits.HDUList([fits.PrimaryHDU(header=primary), table, aperture])
    # CHECKSUM/DATASUM with a fixed comment: astropy's default comment holds the time of
    # writing, which would make two runs with the same seed differ byte for byte.
    for hdu in hdul:
        hdu.add_checksum(when="HDU checksum")
    tmp = path.with_name(f".tmp-{path.name}")
    hdul.writeto(tmp, overwrite=True)
    if path.exists() and not overwrite:
        tmp.unlink()
        raise FileExistsError(path)
    tmp.replace(path)
    return path
