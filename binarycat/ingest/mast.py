"""TESS 2-minute SPOC light curves from MAST through ``astroquery.mast``: resumable and fault-tolerant.

The service
-----------
`TessLightCurveArchive` wraps its own ``astroquery.mast.ObservationsClass`` and asks MAST what
the public examples ask::

    obs = query_criteria(obs_collection="TESS", dataproduct_type="timeseries", target_name="25155310")
    products = filter_products(get_product_list(obs), productSubGroupDescription="LC")
    download_file(products[i]["dataURI"], local_path=...)

(``find``), or the same within a radius of a position (``find_near``, which ties every light
curve back to its TIC through the observation's ``target_name`` and the SPOC file name).

astroquery internals relied on (0.4.11)
---------------------------------------
- ``ObservationsClass()._portal_api_connection`` (a ``PortalAPI``) holds the URLs as class
  attributes built from ``conf.server`` at import time: ``MAST_REQUEST_URL``,
  ``COLUMNS_CONFIG_URL``, ``MAST_DOWNLOAD_URL``, ``MAST_BUNDLE_URL``. To use another server
  (a mirror, or the loopback stand-in of the tests) they are set on this instance only, so
  other astroquery users in the process are not affected.
- ``PortalAPI._column_configs`` is a class-level dict shared by every instance: a columns
  config fetched from one server would be reused for another. Each archive gets its own
  (empty) dict, so it asks its own server.
- ``PortalAPI`` shares the ``requests`` session of the ``ObservationsClass``
  (``ObservationsClass()._session``). astroquery sends MAST requests without a timeout (and
  ``download_file`` gives ``_download_file`` none), so a stalled server would hang forever;
  the session gets a transport adapter (public ``requests`` API) that supplies ``timeout``
  to every request and counts them.

What a run does (`fetch_lightcurves`)
-------------------------------------
- **Targets** are TIC ids (each asked for by ``target_name``), or catalogue sources chosen by
  an SQL condition (each asked for by position, within ``radius_arcsec``).
- **Resumable.** Each target's light curves are downloaded and then ingested
  (`binarycat.ingest.lightcurves.ingest_lightcurve_files`) and committed before the next
  target starts, so a run killed at any point loses at most the target in flight. Sectors
  already in ``lightcurves`` are not downloaded again; a target whose every light curve is
  stored is marked done in ``coverage`` (survey `COVERAGE_SURVEY`, covered) and a target with
  none is marked not covered; later runs do not ask MAST about either unless
  ``refresh=True`` (new sectors appear as TESS observes). Downloads go to a temporary name
  and are renamed when complete (the size MAST lists is checked), so a file in the download
  folder is whole and is not fetched again.
- **Fault-tolerant.** HTTP errors, ``status: ERROR`` answers (``RemoteServiceError``),
  timeouts, broken connections and truncated downloads are retried with exponential backoff
  and full jitter. After the last attempt the failure goes to ``fetch_failures`` (source id
  ``'TIC <tic>'`` or the catalogue source id, survey `COVERAGE_SURVEY`, filter ``'lc'`` for
  the search or ``'sNNNN'`` for one sector) and the run goes on with the other targets; a
  later run tries again and clears the rows when it succeeds.

`COVERAGE_SURVEY` is ``'TESS-LC'``, not ``'TESS'``: the hips2fits fetcher keeps stamp coverage
of the registry survey ``TESS`` in the same ``coverage`` table (one row per source and survey),
and a source can have a TESS stamp without a 2-minute light curve, or the other way round.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import duckdb
import numpy as np

from binarycat.catalog.lightcurve_store import MATCH_RADIUS_ARCSEC, lightcurve_id_for
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError
from binarycat.ingest.lightcurves import ingest_lightcurve_files

__all__ = [
    "COVERAGE_SURVEY",
    "ArchiveError",
    "LightCurveFetchResult",
    "LightCurveProduct",
    "TessLightCurveArchive",
    "fetch_lightcurves",
]

COVERAGE_SURVEY = "TESS-LC"
_LC_NAME = re.compile(r"-s(\d{4})-(\d{16})-\d+-s_lc\.fits$")
_OBS_ID = re.compile(r"-s(\d{4})-(\d{16})-")


class ArchiveError(Exception):
    """A MAST request that failed on every attempt."""

    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason, self.attempts = reason, attempts


class _DownloadError(Exception):
    pass


@dataclass(frozen=True)
class LightCurveProduct:
    """One 2-minute SPOC light-curve file at MAST."""

    tic_id: int
    sector: int
    uri: str  # mast:TESS/product/<filename>
    filename: str
    size: int | None = None  # bytes, as MAST lists it
    obs_id: str = ""

    @property
    def lightcurve_id(self) -> str:
        return lightcurve_id_for(self.tic_id, self.sector)


class _Transport:
    """Builds a ``requests`` adapter that supplies a default timeout and counts requests."""

    @staticmethod
    def adapter(timeout: float):
        from requests.adapters import HTTPAdapter

        class TimeoutCountingAdapter(HTTPAdapter):
            def __init__(self):
                super().__init__()
                self.default_timeout = timeout
                self.count = 0
                self.lock = threading.Lock()

            def send(self, request, stream=False, timeout=None, **kwargs):
                with self.lock:
                    self.count += 1
                return super().send(request, stream=stream,
                                    timeout=self.default_timeout if timeout is None else timeout, **kwargs)

        return TimeoutCountingAdapter()


def _describe(exc: BaseException) -> str:
    import requests
    from astroquery.exceptions import RemoteServiceError

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"MAST answered HTTP {exc.response.status_code} ({exc.response.reason or 'error'})"
    if isinstance(exc, RemoteServiceError):
        return "MAST answered an error: " + " ".join(str(exc).split())[:200]
    if isinstance(exc, (requests.Timeout, TimeoutError)):
        return "MAST did not answer in time"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke during the download (incomplete file)"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect to MAST: " + " ".join(str(exc).split())[:160]
    if isinstance(exc, _DownloadError):
        return str(exc)
    if isinstance(exc, ValueError):  # requests' JSONDecodeError: an HTML page instead of JSON
        return f"MAST answered something that is not JSON ({type(exc).__name__})"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


class TessLightCurveArchive:
    """TESS 2-minute SPOC light curves at MAST (or a mirror, or a test server), with retries.

    Parameters
    ----------
    server : str, optional
        Base URL of the MAST portal, e.g. ``http://127.0.0.1:8000`` (default astroquery's,
        ``https://mast.stsci.edu``). Every portal URL (invoke, columnsconfig, download, bundle)
        is built from it.
    timeout : float
        Seconds to wait for each HTTP answer (connect and read).
    retries : int
        Attempts after the first, for each query and each download.
    backoff : float
        First retry delay in seconds; doubles each attempt (capped at ``max_backoff``), with
        full jitter.
    seed : int
        Seed of the jitter.

    Attributes
    ----------
    downloads, cached : int
        Files downloaded, and files found complete in the download folder.
    """

    def __init__(self, server: str | None = None, *, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 1.0, max_backoff: float = 30.0, seed: int = 0):
        from astroquery.mast import ObservationsClass

        if retries < 0:
            raise BinarycatError(f"retries must be 0 or more, not {retries}.")
        self.server = server.rstrip("/") if server else None
        self.timeout, self.retries = float(timeout), int(retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.rng = random.Random(seed)
        self.downloads = 0
        self.cached = 0
        self._obs = ObservationsClass()
        portal = self._obs._portal_api_connection
        portal._column_configs = {}  # the class-level dict is shared by every instance
        if self.server:
            portal.MAST_REQUEST_URL = self.server + "/api/v0/invoke"
            portal.COLUMNS_CONFIG_URL = self.server + "/portal/Mashup/Mashup.asmx/columnsconfig"
            portal.MAST_DOWNLOAD_URL = self.server + "/api/v0.1/Download/file"
            portal.MAST_BUNDLE_URL = self.server + "/api/v0.1/Download/bundle"
        self._adapter = _Transport.adapter(self.timeout)
        for prefix in ("http://", "https://"):
            self._obs._session.mount(prefix, self._adapter)

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (every attempt, downloads included)."""
        return self._adapter.count

    def _retry(self, fn: Callable, *args):
        reason = "no attempt made"
        for attempt in range(1, self.retries + 2):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # NoResultsWarning for an empty answer, etc.
                    return fn(*args)
            except Exception as exc:  # every error is retried; KeyboardInterrupt is not caught
                reason = _describe(exc)
            if attempt <= self.retries:
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * self.rng.random())
        raise ArchiveError(reason, self.retries + 1)

    # -- queries -------------------------------------------------------------------------------
    def _products_of(self, observations, tic_id: int | None = None) -> list[LightCurveProduct]:
        if len(observations) == 0:
            return []
        keep = np.array([str(o["obs_collection"]).upper() == "TESS" and str(o["dataproduct_type"]) == "timeseries"
                         and str(o["target_name"]).strip().isdigit()
                         and (tic_id is None or int(str(o["target_name"]).strip()) == tic_id)
                         for o in observations], dtype=bool)  # no FFIs, no other missions or targets
        observations = observations[keep]
        if len(observations) == 0:
            return []
        table = self._retry(self._obs.get_product_list, observations)
        if len(table) == 0:
            return []
        lcs = self._obs.filter_products(table, productSubGroupDescription="LC")
        found: dict[tuple[int, int], LightCurveProduct] = {}
        for row in lcs:
            name = str(row["productFilename"])
            m = _LC_NAME.search(name) or _OBS_ID.search(str(row["obs_id"]))
            if not name.endswith("_lc.fits") or m is None:
                continue
            sector, tic = int(m.group(1)), int(m.group(2))
            if tic_id is not None and tic != tic_id:
                continue
            size = row["size"] if "size" in row.colnames else None
            try:
                size = int(size) if size is not None and not hasattr(size, "mask") and int(size) > 0 else None
            except (TypeError, ValueError):
                size = None
            found.setdefault((tic, sector), LightCurveProduct(tic, sector, str(row["dataURI"]), name, size,
                                                              str(row["obs_id"])))
        return [found[k] for k in sorted(found)]

    def find(self, tic_id: int) -> list[LightCurveProduct]:
        """The 2-minute SPOC light curves of one TIC, one per sector, in sector order.

        Raises
        ------
        ArchiveError
            When MAST could not answer after the retries.
        """
        tic_id = int(tic_id)
        obs = self._retry(lambda: self._obs.query_criteria(
            obs_collection="TESS", dataproduct_type="timeseries", target_name=str(tic_id)))
        return self._products_of(obs, tic_id)

    def find_near(self, ra: float, dec: float, radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> list[LightCurveProduct]:
        """The 2-minute SPOC light curves of every TESS target within ``radius_arcsec`` of
        (``ra``, ``dec``) (ICRS degrees), by TIC then sector.

        Raises
        ------
        ArchiveError
        """
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        position = SkyCoord(float(ra) * u.deg, float(dec) * u.deg, frame="icrs")
        obs = self._retry(lambda: self._obs.query_criteria(
            coordinates=position, radius=float(radius_arcsec) * u.arcsec,
            obs_collection="TESS", dataproduct_type="timeseries"))
        return self._products_of(obs)

    # -- downloads -----------------------------------------------------------------------------
    def path_for(self, product: LightCurveProduct, dest_dir: str | os.PathLike) -> Path:
        """Where `download` puts ``product``: ``dest_dir/sNNNN/<file name>``."""
        return Path(dest_dir) / f"s{product.sector:04d}" / product.filename

    def download(self, product: LightCurveProduct, dest_dir: str | os.PathLike) -> Path:
        """Download one light curve into ``dest_dir/sNNNN/`` unless a complete copy is there.

        The file is written under a temporary name and renamed once its size is the one MAST
        lists, so a file with the final name is always whole.

        Raises
        ------
        ArchiveError
        """
        dest = self.path_for(product, dest_dir)
        if dest.is_file() and (product.size is None or dest.stat().st_size == product.size):
            self.cached += 1
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")

        def attempt() -> Path:
            tmp.unlink(missing_ok=True)
            status, msg, _ = self._obs.download_file(product.uri, local_path=str(tmp), cache=False, verbose=False)
            if status != "COMPLETE":
                raise _DownloadError(_short(msg) or f"download {status}")
            got = tmp.stat().st_size if tmp.exists() else 0
            if product.size is not None and got != product.size:
                raise _DownloadError(f"truncated download ({got} of {product.size} bytes)")
            if got == 0:
                raise _DownloadError("empty download")
            os.replace(tmp, dest)
            return dest

        try:
            path = self._retry(attempt)
        finally:
            tmp.unlink(missing_ok=True)
        self.downloads += 1
        return path


def _short(msg) -> str:
    """astroquery's ``HTTPError: 500 Server Error: X for url: U`` without the URL."""
    text = " ".join(str(msg or "").split())
    text = text.split(" for url:")[0]
    m = re.match(r"HTTPError: (\d{3}) (?:Client|Server) Error: ?(.*)", text)
    return f"MAST answered HTTP {m.group(1)} ({m.group(2) or 'error'})" if m else text


# -- the fetch ---------------------------------------------------------------------------------
@dataclass
class LightCurveFetchResult:
    """What `fetch_lightcurves` did.

    Attributes
    ----------
    selected : int
        Targets chosen (TIC ids given, or sources matching the condition).
    skipped : list of str
        Targets not asked about: done on an earlier run, or known to have no 2-min light curve.
    added, existing : list of str
        ``lightcurve_id`` values stored now, and those found at MAST that were already stored.
    not_covered : list of str
        Targets with no 2-minute light curve at MAST (recorded in ``coverage``).
    failed : list of (str, str)
        ``(target, reason)`` for each search or sector that failed (recorded in ``fetch_failures``).
    blended, unmatched : list of str
        Added light curves sharing a TESS pixel with other sources, or tied to no source.
    downloads, cached : int
        Files downloaded, and complete files reused from the download folder.
    requests : int
        HTTP requests sent (all attempts).
    """

    selected: int = 0
    skipped: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    not_covered: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    blended: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    downloads: int = 0
    cached: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _Target:
    key: str  # 'TIC <tic>' or a source_id
    tic_id: int | None = None
    ra: float | None = None
    dec: float | None = None


def _tic_targets(catalog: Catalog, tic_ids: Iterable, refresh: bool) -> tuple[list[_Target], list[str]]:
    tics: list[int] = []
    for t in tic_ids:
        text = str(t).strip()
        if text.upper().startswith("TIC"):
            text = text[3:].strip()
        if not text.isdigit() or int(text) <= 0:
            raise BinarycatError(f"{t!r} is not a TIC id (a positive integer).")
        if int(text) not in tics:
            tics.append(int(text))
    if not tics:
        raise BinarycatError("No TIC ids were given.")
    targets = [_Target(f"TIC {t}", tic_id=t) for t in tics]
    known = set() if refresh else {
        k for (k,) in catalog.sql("select source_id from coverage where survey = ? and source_id in (select unnest(?))",
                                  [COVERAGE_SURVEY, [t.key for t in targets]]).fetchall()}
    return [t for t in targets if t.key not in known], [t.key for t in targets if t.key in known]


def _source_targets(catalog: Catalog, where: str | None, refresh: bool) -> tuple[list[_Target], list[str]]:
    cond = f"WHERE ({where})" if where and where.strip() else ""
    sql = f"""SELECT s.source_id, s.ra, s.dec,
                     EXISTS (SELECT 1 FROM coverage c WHERE c.source_id = s.source_id AND c.survey = ?) AS known
              FROM sources s {cond} ORDER BY s.source_id"""
    try:
        rows = catalog.sql(sql, [COVERAGE_SURVEY]).fetchall()
    except duckdb.Error as exc:
        raise BinarycatError(f"--where is not a valid condition on sources: {' '.join(str(exc).split())}") from None
    todo = [_Target(sid, ra=ra, dec=dec) for sid, ra, dec, known in rows if refresh or not known]
    return todo, [sid for sid, _, _, known in rows if known and not refresh]


def fetch_lightcurves(
    catalog: Catalog,
    *,
    tic_ids: Iterable[int | str] | None = None,
    where: str | None = None,
    limit: int | None = None,
    refresh: bool = False,
    radius_arcsec: float = MATCH_RADIUS_ARCSEC,
    match_radius_arcsec: float = MATCH_RADIUS_ARCSEC,
    download_dir: str | os.PathLike | None = None,
    keep_downloads: bool = True,
    archive: TessLightCurveArchive | None = None,
    server: str | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: Callable[..., object] | None = None,
) -> LightCurveFetchResult:
    """Download TESS 2-minute light curves from MAST and store them in ``catalog``.

    Parameters
    ----------
    catalog : Catalog
    tic_ids : iterable of int, optional
        TIC ids to fetch (``'TIC 123'`` strings are accepted too).
    where : str, optional
        Instead of ``tic_ids``: an SQL condition on ``sources`` (alias ``s``), e.g.
        ``"s.dec > -6"``; each chosen source is searched by position. With neither, every
        source is.
    limit : int, optional
        At most this many targets this run (after skipping the known ones).
    refresh : bool
        Ask again about targets marked done or not covered by earlier runs (new sectors).
    radius_arcsec : float
        Search radius around a source (``where`` mode).
    match_radius_arcsec : float
        Radius of the tie of a light curve to a catalogue source (see `ingest_lightcurve_files`).
    download_dir : path, optional
        Where the files go (default ``<catalogue>/downloads/tess``), in ``sNNNN/`` folders.
    keep_downloads : bool
        Keep the files after they are stored (their arrays are in the catalogue either way).
    archive : TessLightCurveArchive, optional
        The service client; by default one is made from ``server``, ``retries``, ``backoff``
        and ``timeout``.
    progress : callable, optional
        ``progress(targets_done, targets_total, counts)`` after each target is committed,
        with counts of stored light curves, not covered and failed targets.

    Returns
    -------
    LightCurveFetchResult

    Raises
    ------
    BinarycatError
        For bad TIC ids, an invalid ``where`` condition, or both ``tic_ids`` and ``where``.
    """
    t0 = time.perf_counter()
    if tic_ids is not None and where:
        raise BinarycatError("Give TIC ids or a --where condition, not both.")
    if tic_ids is not None:
        todo, skipped = _tic_targets(catalog, tic_ids, refresh)
    else:
        todo, skipped = _source_targets(catalog, where, refresh)
    if limit is not None:
        todo = todo[: max(0, int(limit))]
    result = LightCurveFetchResult(selected=len(todo) + len(skipped), skipped=skipped)
    if not todo:
        result.seconds = time.perf_counter() - t0
        return result
    archive = archive or TessLightCurveArchive(server, timeout=timeout, retries=retries, backoff=backoff)
    requests0, downloads0, cached0 = archive.requests, archive.downloads, archive.cached
    dest = Path(download_dir) if download_dir else catalog.path / "downloads" / "tess"
    failed_targets: set[str] = set()

    for done, target in enumerate(todo, 1):
        ok = _fetch_target(catalog, archive, target, dest, result, radius_arcsec=radius_arcsec,
                           match_radius_arcsec=match_radius_arcsec, keep_downloads=keep_downloads)
        if not ok:
            failed_targets.add(target.key)
        if progress is not None:
            progress(done, len(todo), {"stored": len(result.added), "not covered": len(result.not_covered),
                                       "failed": len(failed_targets)})
    result.requests = archive.requests - requests0
    result.downloads = archive.downloads - downloads0
    result.cached = archive.cached - cached0
    result.seconds = time.perf_counter() - t0
    return result


def _fetch_target(catalog: Catalog, archive: TessLightCurveArchive, target: _Target, dest: Path,
                  result: LightCurveFetchResult, *, radius_arcsec: float, match_radius_arcsec: float,
                  keep_downloads: bool) -> bool:
    """Search, download, store and record one target; True when nothing failed."""
    key = target.key
    try:
        if target.tic_id is not None:
            products = archive.find(target.tic_id)
        else:
            products = archive.find_near(target.ra, target.dec, radius_arcsec)
    except ArchiveError as exc:
        result.failed.append((key, f"search failed after {exc.attempts} attempts: {exc.reason}"))
        _record(catalog, key, failures=[("lc", exc.reason, exc.attempts)])
        return False
    if not products:
        where = "at MAST" if target.tic_id is not None else f"within {radius_arcsec:g}\" at MAST"
        result.not_covered.append(key)
        _record(catalog, key, coverage=(False, f"no TESS 2-min SPOC light curve {where}"))
        return True

    ids = [p.lightcurve_id for p in products]
    stored = {v for (v,) in catalog.sql(
        "select lightcurve_id from lightcurves where lightcurve_id in (select unnest(?))", [ids]).fetchall()}
    result.existing.extend(i for i in ids if i in stored)
    failures: list[tuple[str, str, int]] = []
    paths: dict[str, LightCurveProduct] = {}

    def which(p: LightCurveProduct) -> str:
        return f"sector {p.sector}" if p.tic_id == target.tic_id else f"TIC {p.tic_id} sector {p.sector}"

    for product in products:
        if product.lightcurve_id in stored:
            continue
        try:
            paths[str(archive.download(product, dest))] = product
        except ArchiveError as exc:
            failures.append((f"s{product.sector:04d}",
                             f"{which(product)}: download failed after {exc.attempts} attempts: {exc.reason}",
                             exc.attempts))
    if paths:
        res = ingest_lightcurve_files(catalog, list(paths), match_radius_arcsec=match_radius_arcsec)
        result.added.extend(res.added)
        result.existing.extend(res.existing)
        result.blended.extend(res.blended)
        result.unmatched.extend(res.unmatched)
        bad = {}
        for path, reason in res.failed:
            product = paths.get(path)
            if product is None:
                continue
            bad[path] = product
            failures.append((f"s{product.sector:04d}",
                             f"{which(product)}: the file cannot be stored: {reason}", 1))
            if "good cadences" not in reason:  # unreadable: fetch it again next time
                Path(path).unlink(missing_ok=True)
        if not keep_downloads:
            for path in paths:
                if path not in bad:
                    Path(path).unlink(missing_ok=True)
    for _, reason, _ in failures:
        result.failed.append((key, reason))
    if failures:
        _record(catalog, key, failures=failures)
        return False
    sectors = sorted({(p.tic_id, p.sector) for p in products})
    tics = sorted({t for t, _ in sectors})
    summary = f"{len(sectors)} light curve(s) of TIC {', '.join(map(str, tics))}: sectors " + \
        ",".join(str(s) for _, s in sectors)
    _record(catalog, key, coverage=(True, summary[:500]))
    return True


def _record(catalog: Catalog, key: str, *, coverage: tuple[bool, str] | None = None,
            failures: list[tuple[str, str, int]] | None = None) -> None:
    """One transaction: the target's coverage row, or its failures (others of its rows cleared)."""
    with catalog.transaction() as con:
        if failures:
            filters = [f for f, _, _ in failures]
            con.execute("DELETE FROM fetch_failures WHERE source_id = ? AND survey = ? "
                        "AND filter NOT IN (SELECT unnest(?))", [key, COVERAGE_SURVEY, filters])
            con.executemany("INSERT OR REPLACE INTO fetch_failures (source_id, survey, filter, reason, attempts) "
                            "VALUES (?, ?, ?, ?, ?)",
                            [(key, COVERAGE_SURVEY, f, reason, attempts) for f, reason, attempts in failures])
            # not done: a later run must ask again (this may be a refresh of a target done before)
            con.execute("DELETE FROM coverage WHERE source_id = ? AND survey = ?", [key, COVERAGE_SURVEY])
        else:
            con.execute("DELETE FROM fetch_failures WHERE source_id = ? AND survey = ?", [key, COVERAGE_SURVEY])
        if coverage is not None:
            con.execute("INSERT OR REPLACE INTO coverage (source_id, survey, covered, reason, checked_at) "
                        "VALUES (?, ?, ?, ?, current_timestamp)", [key, COVERAGE_SURVEY, *coverage])
