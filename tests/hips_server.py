"""A local HTTP stand-in for the CDS hips2fits service, serving the simulated sky.

`HipsServer` runs a real ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a daemon thread
and answers the GET requests that ``astroquery.hips2fits.hips2fitsClass.query`` sends::

    from astroquery.hips2fits import hips2fitsClass
    with HipsServer(simulate_sources(50, seed=1), seed=1) as srv:
        h = hips2fitsClass()
        h.server = srv.url            # http://127.0.0.1:PORT/hips-image-services/hips2fits
        hdul = h.query(hips="CDS/P/PanSTARRS/DR1/g", width=64, height=64, projection="TAN",
                       ra=Longitude(ra * u.deg), dec=Latitude(dec * u.deg),
                       fov=Angle(10 * u.arcsec), format="fits")

What it answers (after ``delay_s`` seconds, for every request):

* a bad or missing parameter: **400** with the CDS-style JSON body ``{"title", "description"}``
  (outcome ``bad_request``). Required: ``hips, width, height, ra, dec, fov``. Accepted only as
  this stand-in can render them: ``projection=TAN``, ``coordsys=icrs``, ``rotation_angle=0``,
  ``format=fits`` (each optional, with those defaults); a ``wcs=`` query is refused.
  ``min_cut, max_cut, cmap, stretch`` are ignored, as hips2fits ignores them for FITS.
* a path other than the endpoint, or a ``hips`` id not in the survey registry: **404** JSON
  (outcome ``not_found``); a method other than GET: **405** JSON (``bad_method``).
* a ``hips`` id listed in ``fail_hips``: always **500** JSON (outcome ``permanent``).
* otherwise one deterministic draw decides a fault (see below): **500** JSON (``error500``),
  **500** HTML (``html500``), **200** with the FITS file cut to half its bytes (``truncated``)
  or **200** with an HTML page (``html200``).
* no fault, position outside ``footprint_covers(survey)``: **200**, a float32 FITS image of
  all NaN with the requested TAN WCS (``blank``), as hips2fits does outside a footprint.
* no fault, inside the footprint: **200**, the simulated stamp rendered at the requested grid
  (``ok``): ``width`` x ``height`` pixels, scale ``fov / max(width, height)``, TAN WCS with
  CRVAL = (ra, dec), CDELT1 < 0, CRPIX at the image centre, and the simulator's keywords
  (SURVEY, FILTER, SRCID, FWHM, MAGZP, SKYLEV, SKYSIG, BUNIT, SIMSEED). The star is the
  catalogue source nearest (ra, dec) if it lies within ``match_radius_arcsec`` (drawn at its
  true offset from the centre, its companion and field star with it); with none that close
  the stamp is empty sky (sky plus noise, no SRCID keyword). The same request always gives
  the same bytes. A non-square grid is a centred crop of the square ``max(width, height)``
  render (CRPIX moved to match, so the WCS stays exact).

Faults
------
Each valid request is keyed by ``(hips, ra, dec, width, height, fov)`` as parsed, and counts
its *attempt* number ``k`` (0, 1, 2, ... for repeats of that key; thread-safe). One uniform
``x`` is drawn from ``random.Random(f"{fault_seed}|{key}|{k}")``; with rates ``f, h, c``
(``fail_rate, html_error_rate, corrupt_rate``, summing to at most 1):

    x < f           -> error500
    x < f + h       -> html500
    x < f + h + c   -> corrupt: truncated when (k + crc32(key)) is even, else html200

so the outcome of the k-th attempt of a request depends on the seed and the request only,
never on how concurrent requests interleave, and a retry gets a fresh draw. Repeats of one
key alternate truncated / html200 when both are corrupt.
"""

from __future__ import annotations

import collections
import io
import json
import math
import random
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from astropy.io import fits

from tests.loopback import LoopbackServer
from binarycat.ingest.simulate import DEFAULT_MOFFAT_BETA, _check_psf, _stamp_wcs, footprint_covers, render_stamp
from binarycat.ingest.surveys import SURVEYS

__all__ = ["HipsServer", "ENDPOINT_PATH", "OUTCOMES", "hips_lookup"]

ENDPOINT_PATH = "/hips-image-services/hips2fits"
OUTCOMES = (
    "ok", "blank", "error500", "html500", "truncated", "html200", "permanent",
    "bad_request", "not_found", "bad_method",
)
MAX_SIDE = 4096  # pixels per side this stand-in agrees to render

_HTML_500 = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error "
    b"and was unable to complete your request.</p><hr><address>Apache Server at "
    b"alasky.cds.unistra.fr Port 443</address></body></html>\n"
)
_HTML_200 = (
    b"<!DOCTYPE html>\n<html><head><title>Service maintenance</title></head>\n"
    b"<body><h1>hips2fits is under maintenance</h1><p>Please come back later.</p>"
    b"</body></html>\n"
)


def hips_lookup() -> dict[str, tuple[str, str]]:
    """``{hips_id: (survey name, filter name)}`` for every filter of the registry with an id."""
    out: dict[str, tuple[str, str]] = {}
    for s in SURVEYS.values():
        for f in s.filters:
            if f.hips_id:
                out[f.hips_id] = (s.name, f.name)
    return out


class _BadRequest(Exception):
    def __init__(self, status: int, title: str, description: str, outcome: str):
        super().__init__(description)
        self.status, self.title, self.description, self.outcome = status, title, description, outcome


def _one(params: dict, name: str, default=None) -> str | None:
    values = params.get(name)
    if not values:
        return default
    return values[-1]


def _number(params: dict, name: str, default=None) -> float:
    raw = _one(params, name)
    if raw is None:
        if default is None:
            raise _BadRequest(400, "Bad request", f"Missing mandatory parameter '{name}'",
                              "bad_request")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _BadRequest(400, "Bad request", f"Parameter '{name}' must be a number, not {raw!r}",
                          "bad_request") from None
    if not math.isfinite(value):
        raise _BadRequest(400, "Bad request", f"Parameter '{name}' must be finite, not {raw!r}",
                          "bad_request")
    return value


def _integer(params: dict, name: str) -> int:
    raw = _one(params, name)
    if raw is None:
        raise _BadRequest(400, "Bad request", f"Missing mandatory parameter '{name}'", "bad_request")
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(400, "Bad request", f"Parameter '{name}' must be an integer, not {raw!r}",
                          "bad_request") from None
    if not 1 <= value <= MAX_SIDE:
        raise _BadRequest(400, "Bad request",
                          f"Parameter '{name}' must lie in [1, {MAX_SIDE}], not {value}", "bad_request")
    return value


class HipsServer(LoopbackServer):
    """A hips2fits stand-in over a simulated source table; a context manager.

    Parameters
    ----------
    sources : astropy.table.Table
        From `binarycat.ingest.simulate.simulate_sources` (rows are copied at start).
    seed : int
        The simulation seed of ``sources`` (drives the pixel noise, as in `simulate_sky`).
    fail_rate, html_error_rate, corrupt_rate : float
        Per-request probabilities of a 500 JSON error, a 500 HTML error and a corrupt 200
        (half-length FITS or an HTML page). They must sum to at most 1.
    delay_s : float
        Seconds slept before every answer.
    fail_hips : iterable of str
        HiPS ids that always answer 500 (outcome ``permanent``).
    fault_seed : int
        Seed of the fault draws.
    match_radius_arcsec : float
        How close the nearest source must be to the requested centre to be drawn.
    psf, moffat_beta
        The PSF profile the stars are drawn with, as in `simulate_sky` (``"moffat"`` with a
        beta or a (min, max) range of betas: seeing-limited wings).

    Attributes
    ----------
    url : str
        The endpoint, ``http://127.0.0.1:PORT/hips-image-services/hips2fits``.
    port : int
    requests : list of dict
        One record per request answered, in the order answered:
        ``hips, ra, dec, width, height, fov`` (deg; None where absent or unparsable),
        ``outcome`` (one of `OUTCOMES`), ``status`` (HTTP code), ``attempt``.
    """

    url_path = ENDPOINT_PATH

    def __init__(self, sources, *, seed: int = 0, fail_rate: float = 0.0,
                 corrupt_rate: float = 0.0, html_error_rate: float = 0.0, delay_s: float = 0.0,
                 fail_hips=(), fault_seed: int = 0, match_radius_arcsec: float = 1.0,
                 psf: str = "gaussian", moffat_beta: float | tuple[float, float] = DEFAULT_MOFFAT_BETA):
        rates = (float(fail_rate), float(html_error_rate), float(corrupt_rate))
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-12:
            raise ValueError(f"fault rates must be in [0, 1] and sum to <= 1, not {rates}")
        if delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, not {delay_s}")
        self.seed = int(seed)
        self.fail_rate, self.html_error_rate, self.corrupt_rate = rates
        self.delay_s = float(delay_s)
        self.fail_hips = frozenset(fail_hips if not isinstance(fail_hips, str) else [fail_hips])
        self.fault_seed = int(fault_seed)
        self.match_radius_arcsec = float(match_radius_arcsec)
        psf, moffat_beta = _check_psf(psf, moffat_beta)
        self.profile = {"psf": psf, "moffat_beta": moffat_beta}
        self.requests: list[dict] = []

        cols = sources.colnames
        self._rows = [{c: row[c] for c in cols} for row in sources]
        ra = np.radians(np.asarray(sources["ra"], dtype=float)) if len(sources) else np.zeros(0)
        dec = np.radians(np.asarray(sources["dec"], dtype=float)) if len(sources) else np.zeros(0)
        self._xyz = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
        self._hips = hips_lookup()
        self._lock = threading.Lock()
        self._attempts: collections.Counter = collections.Counter()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.url: str | None = None

    # -- bookkeeping -------------------------------------------------------------------------
    def counts(self) -> collections.Counter:
        """Outcomes of the requests answered so far."""
        with self._lock:
            return collections.Counter(r["outcome"] for r in self.requests)

    def _record(self, record: dict) -> None:
        with self._lock:
            self.requests.append(record)

    # -- the service -------------------------------------------------------------------------
    def nearest_source(self, ra: float, dec: float):
        """``(row, separation_arcsec)`` of the source nearest (ra, dec), or ``(None, inf)``."""
        if not len(self._rows):
            return None, math.inf
        r, d = math.radians(ra), math.radians(dec)
        v = np.array([math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)])
        dots = self._xyz @ v
        i = int(np.argmax(dots))
        chord = np.linalg.norm(self._xyz[i] - v)
        sep = math.degrees(2.0 * math.asin(min(1.0, chord / 2.0))) * 3600.0
        return self._rows[i], sep

    def _decide_fault(self, key: tuple) -> tuple[str | None, int]:
        with self._lock:
            attempt = self._attempts[key]
            self._attempts[key] += 1
        x = random.Random(f"{self.fault_seed}|{key!r}|{attempt}").random()
        f, h, c = self.fail_rate, self.html_error_rate, self.corrupt_rate
        if x < f:
            return "error500", attempt
        if x < f + h:
            return "html500", attempt
        if x < f + h + c:
            parity = (attempt + zlib.crc32(repr(key).encode())) % 2
            return ("truncated" if parity == 0 else "html200"), attempt
        return None, attempt

    def render_fits(self, survey: str, filt: str, ra: float, dec: float, width: int,
                    height: int, fov_deg: float) -> tuple[bytes, str]:
        """The FITS bytes of a fault-free answer and its outcome (``ok`` or ``blank``)."""
        n = max(width, height)
        scale = fov_deg * 3600.0 / n
        x0, y0 = (n - width) // 2, (n - height) // 2  # the crop of the square n x n grid
        if not bool(footprint_covers(survey, ra, dec)):
            header = _stamp_wcs(ra, dec, n, scale).to_header()
            header["CRPIX1"] = header["CRPIX1"] - x0
            header["CRPIX2"] = header["CRPIX2"] - y0
            data = np.full((height, width), np.nan, dtype=np.float32)
            return _fits_bytes(data, header), "blank"

        row, sep = self.nearest_source(ra, dec)
        empty = row is None or sep > self.match_radius_arcsec
        if empty:
            # Empty sky: a star too faint to matter, with a random stream fixed by the position.
            pos = f"{ra:.9f},{dec:.9f}".encode()
            row = {
                "source_id": str(10**10 + zlib.crc32(pos)), "ra": ra, "dec": dec,
                "mag_r": 99.0, "color": 0.0, "is_binary": False, "separation_arcsec": 0.0,
                "position_angle_deg": 0.0, "flux_ratio": 0.0, "has_field_star": False,
                "field_separation_arcsec": 0.0, "field_position_angle_deg": 0.0,
                "field_flux_ratio": 0.0, "field_color": 0.0,
            }
        exact = float(row["ra"]) == ra and float(row["dec"]) == dec
        image, header, _ = render_stamp(
            row, survey, filt, seed=self.seed, n_pix=n, pixel_scale_arcsec=scale,
            center=None if exact else (ra, dec), **self.profile,
        )
        if empty:
            del header["SRCID"]
        if (x0, y0) != (0, 0):
            image = image[y0:y0 + height, x0:x0 + width]
            header["CRPIX1"] = header["CRPIX1"] - x0
            header["CRPIX2"] = header["CRPIX2"] - y0
        return _fits_bytes(np.ascontiguousarray(image), header), "ok"

    def handle(self, method: str, target: str) -> tuple[int, str, bytes]:
        """Answer one request: ``(status, content type, body)``; records it."""
        rec = dict(hips=None, ra=None, dec=None, width=None, height=None, fov=None,
                   outcome=None, status=None, attempt=None)
        try:
            status, ctype, body = self._answer(method, target, rec)
        except _BadRequest as e:
            status, ctype, body = e.status, "application/json", _json_error(e.title, e.description)
            rec["outcome"] = e.outcome
        rec["status"] = status
        if self.delay_s:
            time.sleep(self.delay_s)
        self._record(rec)
        return status, ctype, body

    def _answer(self, method: str, target: str, rec: dict) -> tuple[int, str, bytes]:
        parts = urlsplit(target)
        if parts.path.rstrip("/") != ENDPOINT_PATH:
            raise _BadRequest(404, "Not found", f"No service at {parts.path}", "not_found")
        if method != "GET":
            raise _BadRequest(405, "Method not allowed", f"{method} is not supported; use GET",
                              "bad_method")
        params = parse_qs(parts.query, keep_blank_values=True)
        rec["hips"] = hips = _one(params, "hips")
        if _one(params, "wcs") is not None:
            raise _BadRequest(400, "Bad request",
                              "wcs queries are not supported by this test server", "bad_request")
        if not hips:
            raise _BadRequest(400, "Bad request", "Missing mandatory parameter 'hips'", "bad_request")
        rec["width"] = width = _integer(params, "width")
        rec["height"] = height = _integer(params, "height")
        ra = _number(params, "ra")
        rec["ra"] = ra = ra % 360.0
        rec["dec"] = dec = _number(params, "dec")
        if not -90.0 <= dec <= 90.0:
            raise _BadRequest(400, "Bad request", f"dec must lie in [-90, 90], not {dec}", "bad_request")
        rec["fov"] = fov = _number(params, "fov")
        if not 0.0 < fov <= 180.0:
            raise _BadRequest(400, "Bad request", f"fov must lie in ]0, 180] deg, not {fov}",
                              "bad_request")
        projection = (_one(params, "projection", "TAN") or "TAN").upper()
        if projection != "TAN":
            raise _BadRequest(400, "Bad request",
                              f"projection {projection!r} is not supported by this test server (TAN only)",
                              "bad_request")
        coordsys = (_one(params, "coordsys", "icrs") or "icrs").lower()
        if coordsys != "icrs":
            raise _BadRequest(400, "Bad request",
                              f"coordsys {coordsys!r} is not supported by this test server (icrs only)",
                              "bad_request")
        rotation = _number(params, "rotation_angle", 0.0)
        if rotation % 360.0 != 0.0:
            raise _BadRequest(400, "Bad request",
                              f"rotation_angle {rotation} is not supported by this test server (0 only)",
                              "bad_request")
        fmt = (_one(params, "format", "fits") or "fits").lower()
        if fmt != "fits":
            raise _BadRequest(400, "Bad request",
                              f"format {fmt!r} is not supported by this test server (fits only)",
                              "bad_request")

        if hips in self.fail_hips:
            rec["outcome"] = "permanent"
            return 500, "application/json", _json_error(
                "Internal server error", f"HiPS {hips} is unavailable (permanent failure)")
        target_band = self._hips.get(hips)
        if target_band is None:
            raise _BadRequest(404, "Not found", f"HiPS {hips!r} not found", "not_found")

        key = (hips, ra, dec, width, height, fov)
        fault, rec["attempt"] = self._decide_fault(key)
        if fault == "error500":
            rec["outcome"] = fault
            return 500, "application/json", _json_error(
                "Internal server error", "Simulated failure while generating the image")
        if fault == "html500":
            rec["outcome"] = fault
            return 500, "text/html; charset=utf-8", _HTML_500
        if fault == "html200":
            rec["outcome"] = fault
            return 200, "text/html; charset=utf-8", _HTML_200

        body, outcome = self.render_fits(*target_band, ra, dec, width, height, fov)
        if fault == "truncated":
            body, outcome = body[: len(body) // 2], "truncated"
        rec["outcome"] = outcome
        return 200, "application/fits", body


def _json_error(title: str, description: str) -> bytes:
    return json.dumps({"title": title, "description": description}).encode()


def _fits_bytes(data: np.ndarray, header: fits.Header) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buf)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect
    disable_nagle_algorithm = True  # else headers and body in two writes cost a 40 ms delayed ACK
    server_version = "HipsStandIn/1.0"
    app: HipsServer  # set on the subclass made by HipsServer.start

    def _serve(self, send_body: bool = True) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, ctype, body = self.app.handle(self.command, self.path)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._serve()

    def do_POST(self):  # noqa: N802
        self._serve()

    def do_PUT(self):  # noqa: N802
        self._serve()

    def do_DELETE(self):  # noqa: N802
        self._serve()

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass


HipsServer.handler = _Handler  # defined below the server class it serves
