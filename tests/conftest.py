"""Shared fixtures: temporary catalogues and small FITS cutouts made on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from binarycat.catalog.store import Catalog

# CLI output is checked as text: one width whatever terminal runs the tests (xdist workers get 80).
os.environ["COLUMNS"] = "200"

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # pytest -n N: N workers share the cores, so each one's torch (and the CLI processes it
    # starts) takes its share instead of all of them; see binarycat.model.device.cpu_threads.
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# The slowest files, slowest first (seconds on 2 cores: 154, 133, 33, 27, 23, 22, 22). xdist hands
# each worker whole files in collection order, so starting these first keeps one long file from
# beginning last and running on alone; the rest follow in their usual order.
_LONGEST_FIRST = ("test_stamp_classifier.py", "test_cli.py", "test_model.py", "test_lightcurve_cli.py",
                  "test_predict_stream.py", "test_survey_film.py", "test_catalog_release.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: keeps the rest in order


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    cat = Catalog(tmp_path / "cat", create=True)
    yield cat
    cat.close()


def add_sources(cat: Catalog, rows):
    """Insert (source_id, ra, dec) rows straight into ``sources``."""
    from binarycat.catalog.arrays import healpix_index

    for sid, ra, dec in rows:
        cat.sql("insert into sources (source_id, ra, dec, healpix) values (?, ?, ?, ?)",
                [sid, ra, dec, int(healpix_index(ra, dec)[0])])


def make_wcs(ra, dec, scale_arcsec, n):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(n + 1) / 2.0, (n + 1) / 2.0]
    w.wcs.cdelt = [-scale_arcsec / 3600.0, scale_arcsec / 3600.0]
    return w


def star_image(n, scale_arcsec, fwhm_arcsec, offsets=((0.0, 0.0, 1000.0),), noise=1.0, seed=0):
    """Gaussian stars at (dx, dy) arcsec offsets from the centre with the given fluxes, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2.0
    sigma = fwhm_arcsec / 2.3548 / scale_arcsec
    img = rng.normal(0, noise, (n, n))
    for dx, dy, flux in offsets:
        img += flux / (2 * np.pi * sigma**2) * np.exp(
            -((x - c - dx / scale_arcsec) ** 2 + (y - c - dy / scale_arcsec) ** 2) / (2 * sigma**2))
    return img.astype(np.float32)


def write_stamp(path: Path, ra, dec, *, scale=0.25, n=40, fwhm=1.0, offsets=((0.0, 0.0, 1000.0),),
                seed=0, header=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    hdr = make_wcs(ra, dec, scale, n).to_header()
    for k, v in (header or {}).items():
        hdr[k] = v
    fits.PrimaryHDU(star_image(n, scale, fwhm, offsets, seed=seed), header=hdr).writeto(path, overwrite=True)
    return path
