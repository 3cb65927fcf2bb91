"""Ingesting survey cutouts from FITS files into the catalogue.

Each group of per-filter files (see `binarycat.ingest.stacking`) becomes one stamp, tied to a
catalogue source in this order:

1. the header keyword ``SRCID`` (or ``SOURCEID``/``OBJECT``) naming a catalogue source;
2. the file-name prefix up to its first ``_`` naming a catalogue source (``00222_PanSTARRS``);
3. the nearest catalogue source to the image centre within ``match_radius_arcsec``
   (default 1.0": cutouts are centred on their source, and 1" is well under the 2.5"
   separations the catalogue is about, so a neighbour is not taken for the target).

A group that matches no source is reported, never silently dropped. A bad file is reported
with its reason and the rest of its group, and of the run, is still stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from astropy import units as u
from astropy.coordinates import SkyCoord

from binarycat.catalog.arrays import StampRecord, store_stamps
from binarycat.catalog.sources import source_positions
from binarycat.catalog.store import Catalog
from binarycat.errors import BadFitsError, BinarycatError
from binarycat.ingest.fits_io import FitsImage, is_fits_name, read_image
from binarycat.ingest.stacking import group_by_prefix, split_name, stack_images
from binarycat.ingest.surveys import Survey, get_survey, sync_survey_table

__all__ = ["IngestReport", "expand_paths", "ingest_fits", "DEFAULT_MATCH_RADIUS_ARCSEC"]

DEFAULT_MATCH_RADIUS_ARCSEC = 1.0
BATCH = 256
_ID_KEYWORDS = ("SRCID", "SOURCEID", "SOURCE_ID", "OBJECT")


@dataclass
class IngestReport:
    """What an ingest did.

    Attributes
    ----------
    stored : int
        New stamps written.
    already_present : int
        Stamps that were in the catalogue already (re-running adds nothing).
    problems : list of (str, str)
        ``(file, reason)`` for every file that could not be used.
    unmatched : list of (str, float, float)
        ``(group prefix, ra, dec)`` for stamps with no catalogue source.
    files : int
        FITS files considered.
    """

    stored: int = 0
    already_present: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    unmatched: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unmatched


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """FITS files named directly or found (recursively) in folders; missing paths are problems."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file() and is_fits_name(q)))
        elif p.exists():
            files.append(p)
        else:
            problems.append((str(p), "file does not exist"))
    return sorted(set(files)), problems


class _SourceMatcher:
    def __init__(self, catalog: Catalog):
        ids, ra, dec = source_positions(catalog)
        self.ids = ids
        self.id_set = set(ids)
        self.coords = SkyCoord(ra * u.deg, dec * u.deg) if ids else None

    def match(self, prefix: str, image: FitsImage, radius_arcsec: float) -> str | None:
        for key in _ID_KEYWORDS:
            value = image.header.get(key)
            if value is not None and str(value).strip() in self.id_set:
                return str(value).strip()
        head = prefix.split("_", 1)[0]
        if head in self.id_set:
            return head
        if prefix in self.id_set:
            return prefix
        centre = image.centre()
        if centre is None or self.coords is None:
            return None
        c = SkyCoord(centre[0] * u.deg, centre[1] * u.deg)
        idx, sep, _ = c.match_to_catalog_sky(self.coords)
        return self.ids[int(idx)] if sep.arcsec <= radius_arcsec else None


def ingest_fits(
    catalog: Catalog,
    paths: Sequence[str | Path],
    survey: str | Survey,
    *,
    match_radius_arcsec: float = DEFAULT_MATCH_RADIUS_ARCSEC,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Read, stack and store FITS cutouts of one survey.

    Parameters
    ----------
    catalog : Catalog
    paths : list of paths
        Files and folders (searched recursively for ``*.fits``, ``*.fit``, ``*.fts``, gzipped too).
    survey : str or Survey
        Survey name or alias; the files' filters are its bands.
    match_radius_arcsec : float
        Largest distance between a stamp centre and its source (see the module docstring).
    progress : callable, optional
        Called as ``progress(groups_done, groups_total)``.

    Returns
    -------
    IngestReport
    """
    survey = get_survey(survey)
    sync_survey_table(catalog)
    report = IngestReport()
    files, missing = expand_paths(paths)
    report.problems.extend(missing)
    report.files = len(files)
    if not files and not missing:
        raise BinarycatError("No FITS files found in the given paths.")
    matcher = _SourceMatcher(catalog)
    if not matcher.ids:
        raise BinarycatError(
            "The catalogue has no sources to tie stamps to; import some with `binarycat sources import`."
        )
    groups = group_by_prefix(files)
    batch: list[StampRecord] = []
    for n, (prefix, group) in enumerate(groups.items(), start=1):
        record = _group_record(prefix, group, survey, matcher, match_radius_arcsec, report)
        if record is not None:
            batch.append(record)
        if len(batch) >= BATCH:
            _flush(catalog, batch, report)
        if progress:
            progress(n, len(groups))
    _flush(catalog, batch, report)
    return report


def _group_record(prefix, group, survey, matcher, radius, report) -> StampRecord | None:
    images: list[FitsImage] = []
    for path in group:
        try:
            images.append(read_image(path))
        except BadFitsError as exc:
            report.problems.append((exc.path, exc.reason))
    if not images:
        return None
    order = {b.lower(): i for i, b in enumerate(survey.filter_names)}
    images.sort(key=lambda im: (order.get(_band(im).lower(), len(order)), im.path.name))
    source_id = matcher.match(prefix, images[0], radius)
    centre = images[0].centre()
    if source_id is None:
        report.unmatched.append((prefix, *(centre or (None, None))))
        return None
    try:
        data, wcs = stack_images(images)
    except ValueError as exc:
        report.problems.append((str(group[0]), f"cannot stack: {exc}"))
        return None
    scales = [im.pixel_scale_arcsec for im in images if im.pixel_scale_arcsec]
    return StampRecord(
        source_id=source_id,
        survey=survey.name,
        data=data,
        filters=[_band(im) for im in images],
        pixel_scale_arcsec=min(scales) if scales else None,
        ra=centre[0] if centre else None,
        dec=centre[1] if centre else None,
        origin=";".join(im.path.name for im in images),
    )


def _band(image: FitsImage) -> str:
    value = image.header.get("FILTER")
    if value is not None and str(value).strip():
        return str(value).strip()
    return split_name(image.path)[1] or image.path.stem


def _flush(catalog: Catalog, batch: list[StampRecord], report: IngestReport) -> None:
    if not batch:
        return
    result = store_stamps(catalog, batch)
    report.stored += len(result.added)
    report.already_present += len(result.existing)
    batch.clear()
