"""Fetching cutouts from the hips2fits service through astroquery: resumable and fault-tolerant.

Geometry
--------
Every survey is asked for the same field and grid: ``fov_arcsec`` (default 10") on
``size`` x ``size`` pixels (default 64, so 0.156"/px), TAN projection, centred on the source.
hips2fits resamples the survey's HiPS tiles onto that grid; one geometry for every survey is
what the model expects (it resamples stamps to its own input scale anyway).

What a run does
---------------
For each selected source without a stamp of the survey (and not known to be outside the
survey's footprint), every requested filter is fetched; the filters are stacked and stored
exactly as ``binarycat ingest`` stacks and stores files (`stack_images`, `store_stamps`).

- **Resumable.** Stamps are committed in small batches as sources complete; a run killed at
  any point loses at most the sources in flight, and the next run skips what is stored. The
  array store's content hash makes a source fetched twice land once.
- **Fault-tolerant.** Timeouts, connection errors and HTTP errors (astroquery raises
  ``AttributeError`` for a JSON error body and a JSON decode error for an HTML one) are
  retried with exponential backoff and full jitter; an answer that is not a valid FITS image
  of the requested shape is never stored and is retried too. After the last attempt the
  failure goes to ``fetch_failures`` (source, survey, filter, reason, attempts, time) and
  nothing is stored for that source; a later run tries it again.
- **Coverage-aware.** A cutout that is blank (all NaN, or constant) means the source lies
  outside a partial survey's footprint: it is recorded in ``coverage`` as not covered, and
  later runs do not ask again.
- **Polite.** A few worker threads (default 4) share a request-rate cap (default 10/s).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

import duckdb
from astropy import units as u
from astropy.coordinates import Angle, Latitude, Longitude

from binarycat.catalog.arrays import StampRecord, store_stamps
from binarycat.catalog.store import Catalog
from binarycat.errors import BadFitsError, BinarycatError
from binarycat.ingest.fits_io import FitsImage, image_from_hdulist
from binarycat.ingest.stacking import stack_images
from binarycat.ingest.surveys import Survey, get_survey, sync_survey_table

__all__ = ["DEFAULT_FOV_ARCSEC", "DEFAULT_SIZE", "FetchReport", "Hips2FitsFetcher", "fetch_stamps"]

DEFAULT_FOV_ARCSEC = 10.0
DEFAULT_SIZE = 64
BATCH = 16


class RateLimiter:
    """At most ``rate`` request starts per second, shared by threads."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.lock = threading.Lock()
        self.next_time = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_time)
            self.next_time = start + self.interval
        if start > now:
            time.sleep(start - now)


class Blank(Exception):
    """The service answered a blank cutout: the source is outside the survey's footprint."""


class FetchFailed(Exception):
    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason, self.attempts = reason, attempts


class Hips2FitsFetcher:
    """Cutouts from one hips2fits server, with retries; thread-safe (one client per thread).

    Parameters
    ----------
    server : str, optional
        Service URL; default astroquery's (CDS). Set for mirrors and loopback tests.
    timeout : float
        Seconds per request.
    retries : int
        Attempts after the first.
    backoff : float
        First retry delay in seconds; doubles each attempt (capped at ``max_backoff``),
        with full jitter.
    max_rps : float
        Request-rate cap across threads.
    """

    def __init__(self, server: str | None = None, *, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 8.0, max_rps: float | None = 10.0, seed: int = 0):
        self.server, self.timeout, self.retries = server, timeout, retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.limiter = RateLimiter(max_rps)
        self.local = threading.local()
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.requests = 0
        self.count_lock = threading.Lock()

    def _client(self):
        client = getattr(self.local, "client", None)
        if client is None:
            from astroquery.hips2fits import hips2fitsClass

            client = hips2fitsClass()
            if self.server:
                client.server = self.server  # conf.server only accepts the CDS mirrors
            client.timeout = self.timeout
            self.local.client = client
        return client

    def _sleep(self, attempt: int) -> None:
        with self.rng_lock:
            jitter = self.rng.random()
        time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * jitter)

    def cutout(self, hips: str, ra: float, dec: float, size: int, fov_arcsec: float, label: str) -> FitsImage:
        """One validated ``size`` x ``size`` cutout; raises `Blank` or `FetchFailed`."""
        reason = "no attempt made"
        for attempt in range(1, self.retries + 2):
            self.limiter.wait()
            with self.count_lock:
                self.requests += 1
            try:
                hdul = self._client().query(
                    hips=hips, width=size, height=size, projection="TAN",
                    ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg), fov=Angle(fov_arcsec * u.arcsec),
                    format="fits",
                )
                image = image_from_hdulist(hdul, label)
                if image.data.shape != (size, size):
                    raise BadFitsError(label, f"wrong shape {image.data.shape}, asked for {(size, size)}")
                return image
            except BadFitsError as exc:
                if "NaN" in exc.reason or "blank image" in exc.reason:
                    raise Blank(exc.reason) from None
                reason = exc.reason
            except AttributeError as exc:  # astroquery: non-200 answer with a JSON body
                reason = "service error: " + " ".join(str(exc).split())
            except ValueError as exc:  # requests' JSONDecodeError: non-200 answer, HTML body
                reason = f"service error with a non-JSON body ({type(exc).__name__})"
            except Exception as exc:  # timeouts, connection errors, anything the transport raises
                reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            if attempt <= self.retries:
                self._sleep(attempt)
        raise FetchFailed(reason, self.retries + 1)


@dataclass
class FetchReport:
    """What a fetch run did."""

    survey: str
    selected: int = 0
    stored: int = 0
    already_present: int = 0
    not_covered: int = 0
    failures: list[tuple[str, str, str, int]] = field(default_factory=list)  # source, filter, reason, attempts
    requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def _filters(survey: Survey, names: list[str] | None):
    chosen = [survey.filter(n) for n in names] if names else list(survey.filters)
    missing = [f.name for f in chosen if not f.hips_id]
    if missing:
        raise BinarycatError(
            f"{survey.name} filter(s) {', '.join(missing)} have no known HiPS id; "
            f"fetchable filters are {', '.join(f.name for f in survey.filters if f.hips_id)}."
        )
    return chosen


def _todo(catalog: Catalog, survey: str, where: str | None, limit: int | None):
    cond = f"AND ({where})" if where else ""
    sql = f"""SELECT s.source_id, s.ra, s.dec FROM sources s
              WHERE NOT EXISTS (SELECT 1 FROM stamps t WHERE t.source_id = s.source_id AND t.survey = ?)
                AND NOT EXISTS (SELECT 1 FROM coverage c WHERE c.source_id = s.source_id AND c.survey = ?
                                AND NOT c.covered) {cond}
              ORDER BY s.source_id {f'LIMIT {int(limit)}' if limit else ''}"""
    try:
        return catalog.sql(sql, [survey, survey]).fetchall()
    except duckdb.Error as exc:
        raise BinarycatError(f"--where is not a valid condition on sources: {' '.join(str(exc).split())}") from None


def fetch_stamps(
    catalog: Catalog,
    survey: str | Survey,
    *,
    filters: list[str] | None = None,
    size: int = DEFAULT_SIZE,
    fov_arcsec: float = DEFAULT_FOV_ARCSEC,
    where: str | None = None,
    limit: int | None = None,
    workers: int = 4,
    max_rps: float | None = 10.0,
    server: str | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: Callable[..., None] | None = None,
) -> FetchReport:
    """Fetch, stack and store cutouts of the selected sources from one survey.

    Parameters
    ----------
    catalog : Catalog
    survey : str or Survey
    filters : list of str, optional
        Bands to fetch (default: every band with a HiPS id).
    size, fov_arcsec : int, float
        Pixels a side and field of view of every cutout.
    where : str, optional
        SQL condition on ``sources`` (alias ``s``), e.g. ``"s.dec > -6"``.
    limit : int, optional
        At most this many sources (in source_id order) this run.
    workers, max_rps : int, float
        Threads, and the request-rate cap they share.
    server : str, optional
        hips2fits URL (mirror or test server).
    retries, backoff, timeout
        See `Hips2FitsFetcher`.
    progress : callable, optional
        ``progress(sources_done, sources_total, counts)`` with counts of stored, not covered
        and failed sources so far.
    """
    survey = get_survey(survey)
    bands = _filters(survey, filters)
    sync_survey_table(catalog)
    t0 = time.perf_counter()
    todo = _todo(catalog, survey.name, where, limit)
    report = FetchReport(survey.name, selected=len(todo))
    fetcher = Hips2FitsFetcher(server, timeout=timeout, retries=retries, backoff=backoff, max_rps=max_rps)

    def one_source(source_id: str, ra: float, dec: float):
        images, failed = [], []
        for band in bands:
            label = f"hips2fits:{source_id}_{survey.name}_{band.name}"
            try:
                images.append(fetcher.cutout(band.hips_id, ra, dec, size, fov_arcsec, label))
            except Blank as exc:
                return ("blank", source_id, str(exc))
            except FetchFailed as exc:
                failed.append((band.name, exc.reason, exc.attempts))
        if failed:
            return ("failed", source_id, failed)
        for im, band in zip(images, bands):
            im.header["FILTER"] = band.name
        data, wcs = stack_images(images)
        record = StampRecord(
            source_id=source_id, survey=survey.name, data=data, filters=[b.name for b in bands],
            pixel_scale_arcsec=fov_arcsec / size, ra=ra, dec=dec,
            origin=f"hips2fits:{fetcher.server or 'cds'}",
        )
        return ("ok", source_id, record)

    pending_records: list[StampRecord] = []
    pending_coverage: list[tuple] = []
    pending_failures: list[tuple] = []

    def flush():
        if pending_records:
            res = store_stamps(catalog, pending_records)
            report.stored += len(res.added)
            report.already_present += len(res.existing)
        with catalog.transaction() as con:
            if pending_records:
                ids = [r.source_id for r in pending_records]
                con.execute("DELETE FROM fetch_failures WHERE survey = ? AND source_id IN (SELECT unnest(?))",
                            [survey.name, ids])
                con.executemany("INSERT OR REPLACE INTO coverage (source_id, survey, covered, reason) "
                                "VALUES (?, ?, true, 'stamp fetched')", [(i, survey.name) for i in ids])
            if pending_coverage:
                con.executemany("INSERT OR REPLACE INTO coverage (source_id, survey, covered, reason) "
                                "VALUES (?, ?, false, ?)", pending_coverage)
            if pending_failures:
                con.executemany("INSERT OR REPLACE INTO fetch_failures (source_id, survey, filter, reason, attempts) "
                                "VALUES (?, ?, ?, ?, ?)", pending_failures)
        pending_records.clear()
        pending_coverage.clear()
        pending_failures.clear()

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue = iter(todo)
        running = set()
        for row in queue:  # keep at most 2 x workers in flight, so a kill loses little
            running.add(pool.submit(one_source, *row))
            if len(running) >= 2 * max(1, workers):
                break
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                kind, source_id, payload = fut.result()
                if kind == "ok":
                    pending_records.append(payload)
                elif kind == "blank":
                    report.not_covered += 1
                    pending_coverage.append((source_id, survey.name, f"blank cutout: {payload}"))
                else:
                    for band, reason, attempts in payload:
                        report.failures.append((source_id, band, reason, attempts))
                        pending_failures.append((source_id, survey.name, band, reason, attempts))
                done += 1
                nxt = next(queue, None)
                if nxt is not None:
                    running.add(pool.submit(one_source, *nxt))
            if len(pending_records) + len(pending_coverage) + len(pending_failures) >= BATCH:
                flush()
            if progress:
                progress(done, len(todo), {"stored": report.stored + len(pending_records),
                                           "not covered": report.not_covered,
                                           "failed": len({f[0] for f in report.failures})})
    flush()
    report.requests = fetcher.requests
    report.seconds = time.perf_counter() - t0
    return report
