"""A stand-in VizieR on 127.0.0.1 over real HTTPS, for the tests of `binarycat.ingest.vizier`.

It answers ``POST /viz-bin/votable`` as VizieR does for the requests astroquery makes:

- the form body is newline-joined ``key=value`` lines and bare flags (``-out.all``);
- ``-source`` names a catalogue (every table of it) or one table (``J/TEST/1/table1``);
- ``-c=RA±DEC`` with ``-c.rs``/``-c.rm``/``-c.rd`` (arcsec/arcmin/deg) keeps the rows inside
  the cone; ``-out.max`` truncates each table (``unlimited`` keeps all) and marks it with
  ``INFO QUERY_STATUS=OVERFLOW``; ``-out.add=_RAJ2000,_DEJ2000`` adds computed positions in
  degrees to tables that have positions;
- the answer is a VOTable in VizieR's layout, built with astropy: one RESOURCE named after
  the catalogue, one TABLE per sub-table named like ``J/TEST/1/table1``;
- an unknown ``-source`` gets an error VOTable (``INFO QUERY_STATUS=ERROR``) with status
  ``unknown_status`` (200, as VizieR does, unless a test sets 500).

Every request is logged in ``requests`` (method, path, params, flags, body). Tests can make
it misbehave: ``fail_with`` (an HTTP status with an HTML page), ``respond_with`` (status,
content type, body) and ``delay`` (seconds before answering).
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from xml.sax.saxutils import escape

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable.tree import Info, Resource, TableElement, VOTableFile
from astropy.table import Table

ORION = SkyCoord(83.82 * u.deg, -5.39 * u.deg)


def orion_table(n: int = 60, *, seed: int = 1, sexagesimal: bool = True, radius_deg: float = 0.25,
                id_name: str = "Seq") -> Table:
    """``n`` stars scattered around the Orion Nebula Cluster, as a VizieR table would hold them.

    With ``sexagesimal``, ``RAJ2000``/``DEJ2000`` are text (``05 35 16.800``/``-05 23 24.00``);
    otherwise they are degrees with unit ``deg``.
    """
    rng = np.random.default_rng(seed)
    ra = ORION.ra.deg + rng.uniform(-radius_deg, radius_deg, n) / np.cos(ORION.dec.rad)
    dec = ORION.dec.deg + rng.uniform(-radius_deg, radius_deg, n)
    t = Table()
    if id_name == "Seq":
        t["Seq"] = np.arange(1, n + 1, dtype=np.int32)
    else:
        t[id_name] = [f"JW {100 + 7 * i}" for i in range(n)]
    if sexagesimal:
        c = SkyCoord(ra * u.deg, dec * u.deg)
        t["RAJ2000"] = c.ra.to_string(unit=u.hourangle, sep=" ", precision=3, pad=True)
        t["DEJ2000"] = c.dec.to_string(unit=u.deg, sep=" ", precision=2, pad=True, alwayssign=True)
    else:
        t["RAJ2000"] = np.round(ra, 6) * u.deg
        t["DEJ2000"] = np.round(dec, 6) * u.deg
    t["Vmag"] = np.round(rng.uniform(9, 19, n), 2)
    t["Vmag"].unit = u.mag
    return t


def positions(table: Table) -> SkyCoord:
    """The positions a VizieR table holds, as the server reads them."""
    ra, dec = table["RAJ2000"], table["DEJ2000"]
    if ra.dtype.kind in "fi":
        return SkyCoord(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg)
    return SkyCoord(list(ra), list(dec), unit=(u.hourangle, u.deg))


_ERROR_VOTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
 <DESCRIPTION>VizieR stand-in for tests</DESCRIPTION>
 <INFO name="QUERY_STATUS" value="ERROR">{message}</INFO>
 <RESOURCE ID="yCat_error" name="{source}">
 </RESOURCE>
</VOTABLE>
"""


class VizierStandIn:
    """The HTTPS server; ``catalogs`` maps a catalogue id to ``{table name: Table}``."""

    def __init__(self, catalogs: dict[str, dict[str, Table]], cert):
        self.catalogs = catalogs
        self.requests: list[dict] = []
        self.reset()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.server = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def reset(self) -> None:
        self.requests.clear()
        self.fail_with: int | None = None
        self.respond_with: tuple[int, str, bytes] | None = None
        self.delay = 0.0
        self.unknown_status = 200

    def start(self) -> "VizierStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- answering -------------------------------------------------------------------------
    def tables_for(self, source: str) -> tuple[str, dict[str, Table]] | None:
        """(catalogue id, its tables) that ``-source`` names, or None."""
        if source in self.catalogs:
            return source, self.catalogs[source]
        for cat_id, tables in self.catalogs.items():
            if source in tables:
                return cat_id, {source: tables[source]}
        return None

    def answer(self, params: dict[str, str], flags: list[str]) -> tuple[int, str, bytes]:
        source = params.get("-source", "")
        found = self.tables_for(source)
        if found is None:
            body = _ERROR_VOTABLE.format(message=escape(f"No catalogue or table {source} in VizieR"),
                                         source=escape(source))
            return self.unknown_status, "text/xml", body.encode()
        cat_id, tables = found
        limit = params.get("-out.max", "50")
        limit = None if limit == "unlimited" else int(limit)
        added = [c for c in params.get("-out.add", "").split(",") if c]
        cone = _cone(params)

        vot = VOTableFile()
        resource = Resource(name=cat_id, ID="yCat_" + re.sub(r"\W", "_", cat_id))
        vot.resources.append(resource)
        for name, table in tables.items():
            t = table.copy()
            has_pos = "RAJ2000" in t.colnames and "DEJ2000" in t.colnames
            if cone is not None:
                if not has_pos:
                    continue  # VizieR leaves tables without positions out of a cone search
                centre, radius = cone
                t = t[positions(t).separation(centre) <= radius]
            if has_pos and len(t):
                pos = positions(t)
                if "_RAJ2000" in added:
                    t.add_column(pos.ra.deg * u.deg, name="_RAJ2000", index=0)
                if "_DEJ2000" in added:
                    t.add_column(pos.dec.deg * u.deg, name="_DEJ2000", index=1)
            overflow = limit is not None and len(t) > limit
            if overflow:
                t = t[:limit]
            element = TableElement.from_table(vot, t)
            element.name = name
            element.ID = re.sub(r"\W", "_", name)
            if overflow:
                info = Info(name="QUERY_STATUS", value="OVERFLOW")
                info.content = f"truncated result (maxtup={limit})"
                element.infos.append(info)
            resource.tables.append(element)
        buf = BytesIO()
        vot.to_xml(buf)
        return 200, "text/xml;content=x-votable", buf.getvalue()


def _cone(params: dict[str, str]):
    if "-c" not in params:
        return None
    m = re.fullmatch(r"\s*([0-9.]+)\s*([+-][0-9.]+)\s*", params["-c"])
    if not m:
        raise ValueError(f"bad -c {params['-c']!r}")
    centre = SkyCoord(float(m.group(1)) * u.deg, float(m.group(2)) * u.deg)
    for key, unit in (("-c.rs", u.arcsec), ("-c.rm", u.arcmin), ("-c.rd", u.deg)):
        if key in params:
            return centre, float(params[key]) * unit
    raise ValueError("a cone without a radius")


def parse_form(body: str) -> tuple[dict[str, str], list[str]]:
    """The newline-joined form astroquery sends: ``key=value`` lines and bare flags."""
    params: dict[str, str] = {}
    flags: list[str] = []
    for line in body.split("\n"):
        if not line:
            continue
        key, eq, value = line.partition("=")
        if eq:
            params[key] = value
        else:
            flags.append(key)
    return params, flags


def _handler(stand_in: VizierStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(405, "text/plain", b"POST only\n")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            params, flags = parse_form(body)
            stand_in.requests.append(
                {"method": "POST", "path": self.path, "params": params, "flags": flags, "body": body}
            )
            if stand_in.delay:
                time.sleep(stand_in.delay)
            try:
                if self.path != "/viz-bin/votable":
                    return self._send(404, "text/html", b"<html><body>Not Found</body></html>")
                if stand_in.fail_with:
                    return self._send(stand_in.fail_with, "text/html",
                                      b"<html><body><h1>Internal Server Error</h1></body></html>")
                if stand_in.respond_with:
                    return self._send(*stand_in.respond_with)
                try:
                    answer = stand_in.answer(params, flags)
                except ValueError as exc:
                    answer = (400, "text/plain", f"{exc}\n".encode())
                self._send(*answer)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client gave up (a timeout test)

    return Handler
