"""A local HTTP stand-in for the MAST portal API, serving TESS 2-minute SPOC light curves.

`MastServer` runs a real ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a daemon thread
and answers the requests ``astroquery.mast.ObservationsClass`` sends once its portal URLs point
at ``srv.url`` (see `binarycat.ingest.mast.TessLightCurveArchive`)::

    with MastServer([MastTarget(25155310, 4, 83.8, -5.4)]) as srv:
        archive = TessLightCurveArchive(srv.url)
        products = archive.find(25155310)
        path = archive.download(products[0], "downloads")

What it answers (after ``delay_s`` seconds):

* ``POST /portal/Mashup/Mashup.asmx/columnsconfig`` with the form ``colConfigId=<id>``: the
  columns config of ``Mast.Caom.Cone`` (every CAOM column it serves, with ``vot.datatype`` so
  astroquery's ``build_filter_set`` can tell discrete from continuous filters) or
  ``Mast.Caom.Products``; ``{}`` for an unknown id (astroquery reads an empty answer as an
  error, as MAST's own service does).
* ``POST /api/v0/invoke`` with the form ``request=<urlencoded JSON>`` (``service``, ``params``,
  ``format``, ``pagesize``, ``page``): a JSON table ``{status, msg, fields, data, paging}``
  paged on ``pagesize`` (``paging.pagesFiltered``), for the services

  - ``Mast.Caom.Filtered``: ``params.filters`` is a list of ``{paramName, values}`` with
    discrete ``values`` (any of, case-insensitive; ``freeText`` with ``%`` wildcards) or
    continuous ``[{min, max}]``; an unknown column is ``status: ERROR``;
  - ``Mast.Caom.Filtered.Position``: the same, within ``params.position = "ra, dec, r"``
    (degrees) of ``s_ra, s_dec``;
  - ``Mast.Caom.Products``: the products of the observations ``params.obsid = "id,id,..."``.

  Every configured (TIC, sector) is one TESS observation (``obs_collection=TESS``,
  ``dataproduct_type=timeseries``, ``target_name=str(tic)``, ``sequence_number=sector``) with
  two products: the light curve (``productSubGroupDescription=LC``, ``*-s_lc.fits``, its real
  ``size``) and a target-pixel file (``TP``, ``*-s_tp.fits``, not served). Each target also
  has one HST image observation at its position, so collection and product-type filters
  matter. Any other service is ``status: ERROR``.
* ``HEAD`` and ``GET /api/v0.1/Download/file?uri=mast:TESS/product/<file>``: the light-curve
  file, written at start with `binarycat.ingest.tess_fits.write_spoc_lightcurve` from a
  synthetic light curve (``n_points`` 2-min cadences with a mid-sector gap, a few flagged
  cadences and a detached eclipse; the same target always gives the same bytes);
  ``Content-Length`` and ``Content-Type: application/fits``. An unknown file is 404.

Faults
------
``inject(endpoint, fault, times=1, seconds=...)`` queues a fault for the next ``times``
requests to ``endpoint`` (``"any"``, ``"columnsconfig"``, ``"invoke"``, ``"head"`` or
``"download"`` = the GET of a file); queued faults are used first come, first served:

- ``error500``: 500 with a JSON body; ``html500``: 500 with an HTML page;
- ``status_error``: 200 with ``{"status": "ERROR", "msg": ...}`` (invoke only; astroquery
  raises ``RemoteServiceError``);
- ``executing``: 200 with ``{"status": "EXECUTING"}`` (invoke only; astroquery polls again);
- ``truncated``: the file's first half with an honest ``Content-Length`` (download only);
- ``cut``: the full ``Content-Length`` but only half the bytes, then the connection is closed
  (download only; the client sees an incomplete read);
- ``slow``: sleep ``seconds`` before answering normally.

The constructor's shortcuts: ``fail_first=k`` is ``inject("any", "error500", k)``,
``error_once`` is ``inject("invoke", "status_error")``, ``truncate_once`` is
``inject("download", "truncated")``, ``slow_once=s`` is ``inject("invoke", "slow", seconds=s)``.
Permanent faults: every request about a TIC in ``fail_tics`` (a filtered query naming it, the
products of its observations, a download of its files) answers 500; a download of a
(tic, sector) in ``fail_downloads`` answers 500.

Bookkeeping: ``requests`` holds one record per request answered (``endpoint, service, method,
status, outcome, path``); ``counts()`` counts them by endpoint (``columnsconfig``,
``invoke:<service>``, ``head``, ``download``) and ``outcomes()`` by outcome. A record is added
when the answer is ready, so a ``slow`` request whose client gave up shows late;
``faults_served`` counts the queued faults taken, as soon as they are taken.
"""

from __future__ import annotations

import collections
import fnmatch
import json
import math
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from tests.loopback import LoopbackServer
from binarycat.ingest.tess_fits import CADENCE_DAYS, TessLightCurve, spoc_filename, write_spoc_lightcurve

__all__ = ["MastServer", "MastTarget", "COLUMNS_PATH", "INVOKE_PATH", "DOWNLOAD_PATH", "ENDPOINTS", "FAULTS",
           "synthetic_lightcurve"]

COLUMNS_PATH = "/portal/Mashup/Mashup.asmx/columnsconfig"
INVOKE_PATH = "/api/v0/invoke"
DOWNLOAD_PATH = "/api/v0.1/Download/file"
ENDPOINTS = ("any", "columnsconfig", "invoke", "head", "download")
FAULTS = ("error500", "html500", "status_error", "executing", "truncated", "cut", "slow")

_HTML_500 = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p>"
    b"</body></html>\n"
)

# CAOM observation columns served: name -> (portal field type, VOTable datatype)
_OBS_COLUMNS = {
    "intentType": ("string", "char"),
    "obs_collection": ("string", "char"),
    "provenance_name": ("string", "char"),
    "instrument_name": ("string", "char"),
    "project": ("string", "char"),
    "filters": ("string", "char"),
    "wavelength_region": ("string", "char"),
    "target_name": ("string", "char"),
    "target_classification": ("string", "char"),
    "obs_id": ("string", "char"),
    "s_ra": ("float", "double"),
    "s_dec": ("float", "double"),
    "dataproduct_type": ("string", "char"),
    "proposal_pi": ("string", "char"),
    "calib_level": ("int", "int"),
    "t_min": ("float", "double"),
    "t_max": ("float", "double"),
    "t_exptime": ("float", "double"),
    "em_min": ("float", "double"),
    "em_max": ("float", "double"),
    "obs_title": ("string", "char"),
    "t_obs_release": ("float", "double"),
    "proposal_id": ("string", "char"),
    "proposal_type": ("string", "char"),
    "sequence_number": ("int", "int"),
    "s_region": ("string", "char"),
    "jpegURL": ("string", "char"),
    "dataURL": ("string", "char"),
    "dataRights": ("string", "char"),
    "mtFlag": ("boolean", "boolean"),
    "srcDen": ("float", "double"),
    "obsid": ("string", "char"),
    "objID": ("string", "char"),
}
_PRODUCT_COLUMNS = {
    "obsID": ("string", "char"),
    "obs_collection": ("string", "char"),
    "dataproduct_type": ("string", "char"),
    "obs_id": ("string", "char"),
    "description": ("string", "char"),
    "type": ("string", "char"),
    "dataURI": ("string", "char"),
    "productType": ("string", "char"),
    "productGroupDescription": ("string", "char"),
    "productSubGroupDescription": ("string", "char"),
    "productDocumentationURL": ("string", "char"),
    "project": ("string", "char"),
    "prvversion": ("string", "char"),
    "proposal_id": ("string", "char"),
    "productFilename": ("string", "char"),
    "size": ("int", "long"),
    "parent_obsid": ("string", "char"),
    "dataRights": ("string", "char"),
    "calib_level": ("int", "int"),
    "filters": ("string", "char"),
}


@dataclass(frozen=True)
class MastTarget:
    """One sector of one TESS 2-minute target served by `MastServer`."""

    tic_id: int
    sector: int
    ra: float
    dec: float
    tessmag: float = 10.0
    n_points: int = 2400


def synthetic_lightcurve(t: MastTarget) -> TessLightCurve:
    """A deterministic SPOC-like light curve of ``t``: ``n_points`` cadences, a mid-sector gap,
    1 in 60 cadences flagged (QUALITY 32), white noise and a 2 % eclipse every 1.7 d."""
    rng = np.random.default_rng(zlib.crc32(f"{t.tic_id}|{t.sector}".encode()))
    n = int(t.n_points)
    start = 1325.0 + 27.4 * (t.sector - 1)
    cad = np.arange(n, dtype=np.float64)
    cad[n // 2:] += int(1.0 / CADENCE_DAYS)  # about a day without data at mid-sector
    time_ = start + cad * CADENCE_DAYS
    phase = ((time_ - start) / 1.7) % 1.0
    flux = 1000.0 * (1.0 + 3e-4 * rng.standard_normal(n) - 0.02 * (np.abs(phase - 0.5) < 0.02))
    quality = np.zeros(n, np.int32)
    quality[::60] = 32
    return TessLightCurve(
        tic_id=t.tic_id, sector=t.sector, ra=t.ra, dec=t.dec, time=time_, flux=flux,
        flux_err=np.full(n, 0.3, np.float32), quality=quality, tessmag=t.tessmag,
        camera=1 + t.sector % 4, ccd=1 + t.tic_id % 4,
    )


def _timestamp(sector: int) -> str:
    return f"2019{int(sector) % 1000:03d}000000"


def _sep_deg(ra1, dec1, ra2, dec2) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    s = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(s))))


class _Fault(Exception):
    pass


class MastServer(LoopbackServer):
    """A MAST portal stand-in over a list of TESS targets; a context manager.

    Parameters
    ----------
    targets : iterable of MastTarget or (tic, sector, ra, dec[, tessmag[, n_points]]) tuples
    fail_first : int
        The first ``k`` requests (any endpoint) answer 500.
    error_once, truncate_once : bool
        One invoke answers ``status: ERROR``; one file download is cut to half its bytes.
    slow_once : float
        One invoke waits this many seconds before answering.
    delay_s : float
        Seconds slept before every answer.
    fail_tics : iterable of int
        TICs every request about which answers 500.
    fail_downloads : iterable of (int, int)
        (tic, sector) whose file downloads answer 500.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT``, the base of every MAST URL.
    files : dict
        ``{file name: bytes}`` of the light curves served.
    requests : list of dict
    """


    def __init__(self, targets=(), *, fail_first: int = 0, error_once: bool = False,
                 truncate_once: bool = False, slow_once: float = 0.0, delay_s: float = 0.0,
                 fail_tics=(), fail_downloads=()):
        if delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, not {delay_s}")
        self.targets = [t if isinstance(t, MastTarget) else MastTarget(*t) for t in targets]
        keys = [(t.tic_id, t.sector) for t in self.targets]
        if len(set(keys)) != len(keys):
            raise ValueError("each (tic_id, sector) may be configured once")
        self.delay_s = float(delay_s)
        self.fail_tics = {int(t) for t in fail_tics}
        self.fail_downloads = {(int(a), int(b)) for a, b in fail_downloads}
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._faults: dict[str, collections.deque] = {e: collections.deque() for e in ENDPOINTS}
        self.faults_served: collections.Counter = collections.Counter()
        if fail_first:
            self.inject("any", "error500", fail_first)
        if error_once:
            self.inject("invoke", "status_error")
        if truncate_once:
            self.inject("download", "truncated")
        if slow_once:
            self.inject("invoke", "slow", seconds=slow_once)
        self._build()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.url: str | None = None

    # -- the archive's content ---------------------------------------------------------------
    def _build(self) -> None:
        self.files: dict[str, bytes] = {}
        self._file_owner: dict[str, tuple[int, int]] = {}
        self.observations: list[dict] = []
        self.products: dict[str, list[dict]] = {}
        with tempfile.TemporaryDirectory(prefix="mast-server-") as tmp:
            for i, t in enumerate(self.targets):
                name = spoc_filename(t.tic_id, t.sector, _timestamp(t.sector))
                path = write_spoc_lightcurve(Path(tmp) / name, synthetic_lightcurve(t))
                self.files[name] = path.read_bytes()
                self._file_owner[name] = (t.tic_id, t.sector)
                obs_id = name[: -len("_lc.fits")]
                obsid = str(27_000_000_000 + 2 * i)
                start = 58300.0 + 27.4 * (t.sector - 1)
                self.observations.append({
                    "intentType": "science", "obs_collection": "TESS", "provenance_name": "SPOC",
                    "instrument_name": "Photometer", "project": "TESS", "filters": "TESS",
                    "wavelength_region": "OPTICAL", "target_name": str(t.tic_id),
                    "target_classification": "", "obs_id": obs_id, "s_ra": float(t.ra),
                    "s_dec": float(t.dec), "dataproduct_type": "timeseries", "proposal_pi": "Ricker, George",
                    "calib_level": 3, "t_min": start, "t_max": start + 27.0, "t_exptime": 120.0,
                    "em_min": 600.0, "em_max": 1000.0, "obs_title": "", "t_obs_release": start + 60.0,
                    "proposal_id": "G011234", "proposal_type": "", "sequence_number": int(t.sector),
                    "s_region": f"CIRCLE ICRS {t.ra} {t.dec} 0.00138889", "jpegURL": "",
                    "dataURL": f"mast:TESS/product/{name}", "dataRights": "PUBLIC", "mtFlag": False,
                    "srcDen": None, "obsid": obsid, "objID": str(1_000_000 + i),
                    "_tic": t.tic_id,
                })
                base = {"obsID": obsid, "obs_collection": "TESS", "dataproduct_type": "timeseries",
                        "obs_id": obs_id, "productType": "SCIENCE", "productGroupDescription": "",
                        "productDocumentationURL": "", "project": "TESS", "prvversion": "5.0",
                        "proposal_id": "G011234", "parent_obsid": obsid, "dataRights": "PUBLIC",
                        "calib_level": 3, "filters": "TESS"}
                tp_name = name.replace("_lc.fits", "_tp.fits")
                self.products[obsid] = [
                    {**base, "description": "Light curves", "type": "S",
                     "dataURI": f"mast:TESS/product/{name}", "productGroupDescription": "Minimum Recommended Products",
                     "productSubGroupDescription": "LC", "productFilename": name, "size": len(self.files[name])},
                    {**base, "description": "Target pixel files", "type": "S",
                     "dataURI": f"mast:TESS/product/{tp_name}", "productSubGroupDescription": "TP",
                     "productFilename": tp_name, "size": 50 * len(self.files[name])},
                ]
                hst_obsid = str(27_000_000_000 + 2 * i + 1)
                self.observations.append({
                    **{c: "" for c, (kind, _) in _OBS_COLUMNS.items() if kind == "string"},
                    "obs_collection": "HST", "dataproduct_type": "image", "target_name": f"FIELD-{i}",
                    "obs_id": f"hst_{i:05d}", "s_ra": float(t.ra), "s_dec": float(t.dec), "calib_level": 2,
                    "t_min": 55000.0, "t_max": 55000.1, "t_exptime": 500.0, "em_min": 500.0, "em_max": 600.0,
                    "t_obs_release": 55100.0, "sequence_number": -999, "mtFlag": False, "srcDen": 5000.0,
                    "obsid": hst_obsid, "objID": str(2_000_000 + i), "_tic": None,
                })
                self.products[hst_obsid] = []

    # -- faults and bookkeeping --------------------------------------------------------------
    def inject(self, endpoint: str, fault: str, times: int = 1, *, seconds: float = 0.0) -> None:
        """Queue ``fault`` for the next ``times`` requests to ``endpoint`` (see the module doc)."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, not {endpoint!r}")
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        with self._lock:
            self._faults[endpoint].extend([(fault, float(seconds))] * int(times))

    def _take_fault(self, endpoint: str, allowed: tuple[str, ...]):
        with self._lock:
            for key in ("any", endpoint):
                queue = self._faults[key]
                if queue and (queue[0][0] in allowed or queue[0][0] in ("error500", "html500", "slow")):
                    self.faults_served[queue[0][0]] += 1
                    return queue.popleft()
        return None, 0.0

    def counts(self) -> collections.Counter:
        """Requests answered so far, by endpoint (``invoke:<service>`` for invokes)."""
        with self._lock:
            return collections.Counter(r["endpoint"] for r in self.requests)

    def outcomes(self) -> collections.Counter:
        with self._lock:
            return collections.Counter(r["outcome"] for r in self.requests)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the service -------------------------------------------------------------------------
    def handle(self, method: str, target: str, body: bytes):
        """Answer one request: ``(status, content type, body, declared length or None, close)``."""
        rec = {"endpoint": None, "service": None, "method": method, "status": None, "outcome": None,
               "path": target}
        try:
            status, ctype, payload, length, close = self._answer(method, target, body, rec)
        except _Fault:
            status, ctype, payload, length, close = 500, "application/json", json.dumps(
                {"error": "Internal server error"}).encode(), None, False
            rec["outcome"] = rec["outcome"] or "permanent"
        rec["status"] = status
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.requests.append(rec)
        return status, ctype, payload, length, close

    def _answer(self, method: str, target: str, body: bytes, rec: dict):
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        if path == COLUMNS_PATH and method == "POST":
            endpoint, allowed = "columnsconfig", ()
        elif path == INVOKE_PATH and method == "POST":
            endpoint, allowed = "invoke", ("status_error", "executing")
        elif path == DOWNLOAD_PATH and method == "HEAD":
            endpoint, allowed = "head", ()
        elif path == DOWNLOAD_PATH and method == "GET":
            endpoint, allowed = "download", ("truncated", "cut")
        else:
            rec["endpoint"], rec["outcome"] = "other", "not_found"
            return 404, "application/json", json.dumps({"error": f"No {method} service at {path}"}).encode(), \
                None, False
        rec["endpoint"] = endpoint
        fault, seconds = self._take_fault(endpoint, allowed)
        if fault == "slow":
            time.sleep(seconds)
            rec["outcome"] = "slow"
        elif fault == "error500":
            rec["outcome"] = fault
            return 500, "application/json", json.dumps({"error": "Simulated failure"}).encode(), None, False
        elif fault == "html500":
            rec["outcome"] = fault
            return 500, "text/html; charset=utf-8", _HTML_500, None, False
        if endpoint == "columnsconfig":
            return self._columns(body, rec)
        if endpoint == "invoke":
            return self._invoke(body, rec, fault)
        return self._download(parts.query, rec, fault, head=endpoint == "head")

    def _columns(self, body: bytes, rec: dict):
        form = parse_qs(body.decode("utf-8", "replace"))
        config_id = (form.get("colConfigId") or [""])[0]
        rec["service"] = config_id
        columns = {"Mast.Caom.Cone": _OBS_COLUMNS, "Mast.Caom.Products": _PRODUCT_COLUMNS}.get(config_id)
        config = {} if columns is None else {
            name: {"text": name, "type": kind, "vot.datatype": vot, "vot.description": name}
            for name, (kind, vot) in columns.items()
        }
        rec["outcome"] = rec["outcome"] or ("ok" if config else "unknown_config")
        return 200, "application/json", json.dumps(config).encode(), None, False

    def _invoke(self, body: bytes, rec: dict, fault):
        form = parse_qs(body.decode("utf-8", "replace"))
        try:
            request = json.loads((form.get("request") or [""])[0])
            service = request["service"]
            params = request.get("params") or {}
        except (ValueError, KeyError, TypeError):
            rec["outcome"] = "bad_request"
            return 400, "application/json", json.dumps({"error": "Cannot parse the request"}).encode(), None, False
        rec["service"] = service
        rec["endpoint"] = f"invoke:{service}"
        if fault == "status_error":
            rec["outcome"] = fault
            return self._json({"status": "ERROR", "msg": "Simulated MAST error: the request could not be completed",
                               "data": [], "fields": []})
        if fault == "executing":
            rec["outcome"] = fault
            return self._json({"status": "EXECUTING", "msg": "", "data": [], "fields": []})
        try:
            if service in ("Mast.Caom.Filtered", "Mast.Caom.Filtered.Position"):
                positional = service.endswith("Position")
                rows = self._filtered(params, positional=positional)
                columns = {**_OBS_COLUMNS, "distance": ("float", "double")} if positional else _OBS_COLUMNS
            elif service == "Mast.Caom.Products":
                obsids = [o.strip() for o in str(params.get("obsid", "")).split(",") if o.strip()]
                owners = {o["obsid"]: o["_tic"] for o in self.observations}
                if any(owners.get(o) in self.fail_tics for o in obsids):
                    rec["outcome"] = "permanent"
                    raise _Fault()
                rows = [p for o in obsids for p in self.products.get(o, [])]
                columns = _PRODUCT_COLUMNS
            else:
                raise ValueError(f"Unknown service {service!r}")
        except ValueError as exc:
            rec["outcome"] = "service_error"
            return self._json({"status": "ERROR", "msg": str(exc), "data": [], "fields": []})
        pagesize = max(1, int(request.get("pagesize") or 50000))
        page = max(1, int(request.get("page") or 1))
        pages = math.ceil(len(rows) / pagesize)
        chunk = rows[(page - 1) * pagesize: page * pagesize]
        rec["outcome"] = rec["outcome"] or "ok"
        return self._json({
            "status": "COMPLETE", "msg": "",
            "fields": [{"name": n, "type": kind} for n, (kind, _) in columns.items()],
            "data": [{k: v for k, v in r.items() if not k.startswith("_")} for r in chunk],
            "paging": {"page": page, "pageSize": pagesize, "pagesFiltered": pages, "rows": len(chunk),
                       "rowsFiltered": len(rows), "rowsTotal": len(rows)},
        })

    def _filtered(self, params: dict, *, positional: bool) -> list[dict]:
        rows = self.observations
        filters = params.get("filters") or []
        lookup = {c.lower(): c for c in _OBS_COLUMNS}
        for f in filters:
            col = lookup.get(str(f.get("paramName", "")).lower())
            if col is None:
                raise ValueError(f"Unknown filter column {f.get('paramName')!r}")
            values = f.get("values") or []
            free = f.get("freeText")
            if _OBS_COLUMNS[col][1] in ("double", "int") and values and isinstance(values[0], dict):
                lo, hi = float(values[0]["min"]), float(values[0]["max"])
                rows = [r for r in rows if isinstance(r[col], (int, float)) and lo <= r[col] <= hi]
            else:
                wanted = {str(v).lower() for v in values}
                pattern = free.replace("%", "*").lower() if free else None
                rows = [r for r in rows if str(r[col]).lower() in wanted
                        or (pattern is not None and fnmatch.fnmatchcase(str(r[col]).lower(), pattern))]
            if col == "target_name" and any(str(t) in {str(v) for v in values} for t in self.fail_tics):
                raise _Fault()
        if positional:
            try:
                ra, dec, radius = (float(x) for x in str(params.get("position", "")).split(","))
            except ValueError:
                raise ValueError(f"Cannot parse position {params.get('position')!r}") from None
            rows = [dict(r, distance=_sep_deg(ra, dec, r["s_ra"], r["s_dec"]) * 3600.0) for r in rows
                    if _sep_deg(ra, dec, r["s_ra"], r["s_dec"]) <= radius]
            if any(r["_tic"] in self.fail_tics for r in rows):
                raise _Fault()
        return rows

    def _download(self, query: str, rec: dict, fault, *, head: bool):
        uri = (parse_qs(query).get("uri") or [""])[0]
        name = uri.rsplit("/", 1)[-1] if uri.startswith("mast:TESS/product/") else ""
        rec["service"] = name
        data = self.files.get(name)
        if data is None:
            rec["outcome"] = "not_found"
            return 404, "application/json", json.dumps({"error": f"File {uri!r} not found"}).encode(), None, False
        owner = self._file_owner[name]
        if owner[0] in self.fail_tics or owner in self.fail_downloads:
            rec["outcome"] = "permanent"
            raise _Fault()
        if head:
            rec["outcome"] = rec["outcome"] or "ok"
            return 200, "application/fits", b"", len(data), False
        if fault == "truncated":
            rec["outcome"] = fault
            return 200, "application/fits", data[: len(data) // 2], None, False
        if fault == "cut":
            rec["outcome"] = fault
            return 200, "application/fits", data[: len(data) // 2], len(data), True
        rec["outcome"] = rec["outcome"] or "ok"
        return 200, "application/fits", data, None, False

    @staticmethod
    def _json(obj):
        return 200, "application/json", json.dumps(obj).encode(), None, False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect
    disable_nagle_algorithm = True
    server_version = "MastStandIn/1.0"
    app: MastServer  # set on the subclass made by MastServer.start

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, ctype, payload, declared, close = self.app.handle(self.command, self.path, body)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(declared if declared is not None else len(payload)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if close:
            self.wfile.flush()
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve  # noqa: N815

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass


MastServer.handler = _Handler  # defined below the server class it serves
