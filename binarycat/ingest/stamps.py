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

Reading and stacking the files is most of the work and each group is independent, so groups are
read in worker processes (`binarycat.parallel.iter_chunks`), chunk by chunk in file order; matching
and storing stay in this process, so the catalogue and the report are the same for any number of
workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from binarycat.catalog.arrays import StampRecord, store_stamps
from binarycat.catalog.sources import source_positions
from binarycat.catalog.store import Catalog
from binarycat.errors import BadFitsError, BinarycatError
from binarycat.ingest.fits_io import FitsImage, is_fits_name, read_image
from binarycat.ingest.stacking import group_by_prefix, split_name, stack_images
from binarycat.ingest.surveys import Survey, get_survey, sync_survey_table
from binarycat.parallel import iter_chunks, worker_count

__all__ = ["IngestReport", "expand_paths", "ingest_fits", "DEFAULT_MATCH_RADIUS_ARCSEC"]

DEFAULT_MATCH_RADIUS_ARCSEC = 1.0
BATCH = 256
_MIN_GROUPS_PER_WORKER = 64  # below this a worker's start-up (about a second of imports) costs more than it saves
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


@dataclass
class _ReadGroup:
    """One group of per-filter files, read and stacked (in a worker process)."""

    prefix: str
    problems: list[tuple[str, str]]
    header_ids: list[str] = field(default_factory=list)
    centre: tuple[float, float] | None = None
    data: np.ndarray | None = None
    stack_error: str | None = None
    filters: list[str] = field(default_factory=list)
    pixel_scale_arcsec: float | None = None
    origin: str = ""
    first_path: str = ""

    @property
    def readable(self) -> bool:
        return bool(self.filters)


class _SourceMatcher:
    def __init__(self, catalog: Catalog):
        ids, ra, dec = source_positions(catalog)
        self.ids = ids
        self.id_set = set(ids)
        self.coords = SkyCoord(ra * u.deg, dec * u.deg) if ids else None

    def match(self, group: _ReadGroup, radius_arcsec: float) -> str | None:
        for value in group.header_ids:
            if value in self.id_set:
                return value
        head = group.prefix.split("_", 1)[0]
        if head in self.id_set:
            return head
        if group.prefix in self.id_set:
            return group.prefix
        if group.centre is None or self.coords is None:
            return None
        c = SkyCoord(group.centre[0] * u.deg, group.centre[1] * u.deg)
        idx, sep, _ = c.match_to_catalog_sky(self.coords)
        return self.ids[int(idx)] if sep.arcsec <= radius_arcsec else None


def ingest_fits(
    catalog: Catalog,
    paths: Sequence[str | Path],
    survey: str | Survey,
    *,
    match_radius_arcsec: float = DEFAULT_MATCH_RADIUS_ARCSEC,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
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
    workers : int, optional
        Processes reading and stacking files; None or 0 means every allowed core
        (`binarycat.parallel.allowed_cores`). Small ingests stay in this process. The stored
        stamps and the report do not depend on it.

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
    jobs = [(prefix, group, tuple(survey.filter_names)) for prefix, group in groups.items()]
    n_workers = worker_count(workers, len(jobs), _MIN_GROUPS_PER_WORKER)
    batch: list[StampRecord] = []
    n = 0
    for chunk in iter_chunks(_read_groups, jobs, n_workers, chunk_size=_chunk_size(len(jobs), n_workers)):
        for read in chunk:
            n += 1
            record = _record(read, survey, matcher, match_radius_arcsec, report)
            if record is not None:
                batch.append(record)
            if len(batch) >= BATCH:
                _flush(catalog, batch, report)
            if progress:
                progress(n, len(jobs))
    _flush(catalog, batch, report)
    return report


def _chunk_size(n_jobs: int, workers: int) -> int | None:
    return None if workers <= 1 else max(1, min(BATCH, -(-n_jobs // (4 * workers))))


def _read_groups(jobs: list[tuple[str, list[Path], tuple[str, ...]]]) -> list[_ReadGroup]:
    return [_read_group(*job) for job in jobs]


def _read_group(prefix: str, group: list[Path], filter_names: tuple[str, ...]) -> _ReadGroup:
    read = _ReadGroup(prefix=prefix, problems=[])
    images: list[FitsImage] = []
    for path in group:
        try:
            images.append(read_image(path))
        except BadFitsError as exc:
            read.problems.append((exc.path, exc.reason))
    if not images:
        return read
    order = {b.lower(): i for i, b in enumerate(filter_names)}
    images.sort(key=lambda im: (order.get(_band(im).lower(), len(order)), im.path.name))
    first = images[0]
    read.header_ids = [str(first.header[key]).strip() for key in _ID_KEYWORDS if first.header.get(key) is not None]
    read.centre = first.centre()
    read.filters = [_band(im) for im in images]
    scales = [im.pixel_scale_arcsec for im in images if im.pixel_scale_arcsec]
    read.pixel_scale_arcsec = min(scales) if scales else None
    read.origin = ";".join(im.path.name for im in images)
    read.first_path = str(group[0])
    try:
        read.data, _ = stack_images(images)
    except ValueError as exc:
        read.stack_error = f"cannot stack: {exc}"
    return read


def _record(read: _ReadGroup, survey: Survey, matcher: _SourceMatcher, radius: float,
            report: IngestReport) -> StampRecord | None:
    report.problems.extend(read.problems)
    if not read.readable:
        return None
    source_id = matcher.match(read, radius)
    if source_id is None:
        report.unmatched.append((read.prefix, *(read.centre or (None, None))))
        return None
    if read.stack_error is not None:
        report.problems.append((read.first_path, read.stack_error))
        return None
    return StampRecord(
        source_id=source_id,
        survey=survey.name,
        data=read.data,
        filters=read.filters,
        pixel_scale_arcsec=read.pixel_scale_arcsec,
        ra=read.centre[0] if read.centre else None,
        dec=read.centre[1] if read.centre else None,
        origin=read.origin,
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
