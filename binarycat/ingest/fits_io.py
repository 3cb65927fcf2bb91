"""Reading one survey cutout from a FITS file, with a clear reason when it cannot be used."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from binarycat.errors import BadFitsError

__all__ = ["FitsImage", "read_image", "image_from_hdulist", "FITS_SUFFIXES", "is_fits_name"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz")


def is_fits_name(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in FITS_SUFFIXES)


@dataclass
class FitsImage:
    """A 2-D image with its celestial WCS and header.

    Attributes
    ----------
    path : Path
    data : ndarray
        float32, 2-D; NaN where the survey has no data.
    wcs : astropy.wcs.WCS or None
        Celestial WCS, None when the header has none.
    header : astropy.io.fits.Header
    """

    path: Path
    data: np.ndarray
    wcs: WCS | None
    header: fits.Header

    @property
    def pixel_scale_arcsec(self) -> float | None:
        if self.wcs is None:
            return None
        from astropy.wcs.utils import proj_plane_pixel_scales

        return float(np.mean(proj_plane_pixel_scales(self.wcs)) * 3600.0)

    def centre(self) -> tuple[float, float] | None:
        """ICRS (ra, dec) in degrees of the image centre, or None without a WCS."""
        if self.wcs is None:
            return None
        ny, nx = self.data.shape
        c = self.wcs.pixel_to_world((nx - 1) / 2.0, (ny - 1) / 2.0)
        c = c.icrs
        return float(c.ra.deg), float(c.dec.deg)


def read_image(path: str | Path) -> FitsImage:
    """Read the first image HDU of a FITS file as a float32 2-D array.

    Raises
    ------
    BadFitsError
        Missing file, not a FITS file, truncated, no image data, not 2-D,
        all pixels NaN, or every pixel the same value (a blank cutout).
    """
    path = Path(path)
    if not path.exists():
        raise BadFitsError(path, "file does not exist")
    if path.is_dir():
        raise BadFitsError(path, "is a directory, not a FITS file")
    if path.stat().st_size == 0:
        raise BadFitsError(path, "file is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        warnings.simplefilter("error", AstropyWarning)  # astropy warns on truncation
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                data, header = _first_image(hdul, path)
        except BadFitsError:
            raise
        except (OSError, ValueError, TypeError, IndexError, AstropyWarning) as exc:
            raise BadFitsError(path, _reason(exc)) from None
    return _validated(path, data, header)


def image_from_hdulist(hdul: fits.HDUList, label: str | Path) -> FitsImage:
    """The first image of an in-memory HDUList (e.g. a hips2fits answer), validated like a file.

    Raises
    ------
    BadFitsError
        With ``label`` as the file name.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        warnings.simplefilter("error", AstropyWarning)
        try:
            data, header = _first_image(hdul, label)
        except BadFitsError:
            raise
        except (OSError, ValueError, TypeError, IndexError, AstropyWarning) as exc:
            raise BadFitsError(label, _reason(exc)) from None
    return _validated(Path(str(label)), data, header)


def _first_image(hdul, label):
    hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
    if hdu is None:
        raise BadFitsError(label, "holds no image data")
    return np.array(hdu.data, dtype=np.float32), hdu.header.copy()


def _reason(exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "truncat" in reason.lower() or "buffer is too small" in reason.lower():
        return f"truncated FITS file ({reason})"
    if any(k in reason.lower() for k in ("header missing", "empty or corrupt", "no simple card")):
        return "not a FITS file, or a corrupt one"
    return f"corrupt FITS file ({reason})"


def _validated(path: Path, data: np.ndarray, header: fits.Header) -> FitsImage:
    data = np.squeeze(data) if data.ndim > 2 else data
    if data.ndim != 2:
        raise BadFitsError(path, f"expected a 2-D image, found shape {tuple(data.shape)}")
    if min(data.shape) < 3:
        raise BadFitsError(path, f"image of shape {tuple(data.shape)} is too small to be a stamp")
    finite = np.isfinite(data)
    if not finite.any():
        raise BadFitsError(path, "every pixel is NaN or infinite")
    data[~finite] = np.nan
    good = data[finite]
    if good.min() == good.max():
        raise BadFitsError(path, f"blank image (every pixel is {good.min():g})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(header, naxis=2)
            wcs = wcs if wcs.has_celestial else None
        except Exception:
            wcs = None
    return FitsImage(path, data, wcs, header)
