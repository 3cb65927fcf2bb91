"""Ingest TESS SPOC light-curve files into a catalogue.

Each file is read with `binarycat.ingest.tess_fits.read_spoc_lightcurve`, checked, and
stored with `binarycat.catalog.lightcurve_store.store_lightcurves` in batches, so an
interrupted ingest keeps every batch it committed and a re-run stores only what is missing.
A bad file (missing, not FITS, truncated, no light-curve table, too few good points) is
reported with its reason and does not stop the others.

Examples
--------
>>> from binarycat.catalog.store import Catalog                           # doctest: +SKIP
>>> res = ingest_lightcurve_files(Catalog("cat"), ["tess/s0006/"])         # doctest: +SKIP
>>> len(res.added), res.failed[:1]                                        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from binarycat.catalog.lightcurve_store import MATCH_RADIUS_ARCSEC, store_lightcurves
from binarycat.catalog.store import Catalog
from binarycat.errors import BadFitsError, BinarycatError
from binarycat.ingest.fits_io import is_fits_name
from binarycat.ingest.tess_fits import TessLightCurve, read_spoc_lightcurve

__all__ = ["MIN_GOOD_POINTS", "LightCurveIngestResult", "check_lightcurve", "expand_paths",
           "ingest_lightcurve_files", "ingest_lightcurves"]

MIN_GOOD_POINTS = 2000  # CALNet keeps segments of >= 2,000 points; fewer cannot be used at all
BATCH = 64


@dataclass
class LightCurveIngestResult:
    """What an ingest did.

    Attributes
    ----------
    added, existing : list of str
        ``lightcurve_id`` values stored now, and those already in the catalogue.
    failed : list of (str, str)
        ``(path, reason)`` of every file that could not be used.
    blended : list of str
        Ids of added light curves with more than one catalogue source in their TESS pixel.
    unmatched : list of str
        Ids of added light curves with no catalogue source within the match radius.
    """

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    blended: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, plus the FITS files found (recursively) in the folders named, in order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_fits_name(f)))
        else:
            out.append(p)
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def check_lightcurve(lc: TessLightCurve, *, min_good_points: int = MIN_GOOD_POINTS) -> None:
    """Raise `BadFitsError` when ``lc`` has fewer than ``min_good_points`` usable cadences."""
    if lc.n_good < min_good_points:
        raise BadFitsError(
            lc.path or f"TIC {lc.tic_id} sector {lc.sector}",
            f"has {lc.n_good} good cadences (QUALITY == 0, finite flux); at least "
            f"{min_good_points} are needed",
        )


def ingest_lightcurves(
    catalog: Catalog, lightcurves: Iterable[TessLightCurve], *,
    min_good_points: int = MIN_GOOD_POINTS, match_radius_arcsec: float = MATCH_RADIUS_ARCSEC,
) -> LightCurveIngestResult:
    """Check and store light curves already in memory (from the simulator or a fetch)."""
    result = LightCurveIngestResult()
    good = []
    for lc in lightcurves:
        try:
            check_lightcurve(lc, min_good_points=min_good_points)
            good.append(lc)
        except BadFitsError as exc:
            result.failed.append((exc.path, exc.reason))
    _store(catalog, good, result, match_radius_arcsec)
    return result


def ingest_lightcurve_files(
    catalog: Catalog, paths: Iterable[str | Path], *,
    min_good_points: int = MIN_GOOD_POINTS, match_radius_arcsec: float = MATCH_RADIUS_ARCSEC,
    progress: Callable[[int, int], object] | None = None,
) -> LightCurveIngestResult:
    """Read SPOC light-curve files (or folders of them) and store them in ``catalog``.

    Parameters
    ----------
    catalog : Catalog
    paths : iterable of path
        Files, or folders searched recursively for FITS files.
    min_good_points : int
        A light curve with fewer good cadences is reported in ``failed``.
    match_radius_arcsec : float
        Radius of the tie to a catalogue source (see `binarycat.catalog.lightcurve_store`).
    progress : callable, optional
        ``progress(n_done, n_total)`` after each file.

    Returns
    -------
    LightCurveIngestResult

    Raises
    ------
    BinarycatError
        When ``paths`` names nothing at all.
    """
    files = expand_paths(paths)
    if not files:
        raise BinarycatError("No light-curve files were given (or the folders hold no FITS files).")
    result = LightCurveIngestResult()
    batch: list[TessLightCurve] = []
    for i, path in enumerate(files, 1):
        try:
            lc = read_spoc_lightcurve(path)
            check_lightcurve(lc, min_good_points=min_good_points)
            batch.append(lc)
        except BadFitsError as exc:
            result.failed.append((exc.path, exc.reason))
        if len(batch) >= BATCH:
            _store(catalog, batch, result, match_radius_arcsec)
            batch = []
        if progress is not None:
            progress(i, len(files))
    _store(catalog, batch, result, match_radius_arcsec)
    return result


def _store(catalog, lcs, result: LightCurveIngestResult, match_radius_arcsec: float) -> None:
    if not lcs:
        return
    stored = store_lightcurves(catalog, lcs, match_radius_arcsec=match_radius_arcsec)
    result.added.extend(stored.added)
    result.existing.extend(stored.existing)
    if stored.added:
        rows = catalog.sql(
            "select lightcurve_id, blended, source_id is null from lightcurves "
            "where lightcurve_id in (select unnest(?)) order by lightcurve_id", [stored.added]
        ).fetchall()
        result.blended.extend(lid for lid, blended, _ in rows if blended)
        result.unmatched.extend(lid for lid, _, unmatched in rows if unmatched)
