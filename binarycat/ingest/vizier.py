"""Source lists from VizieR through ``astroquery.vizier``: whole catalogues or cones.

One class, `VizierSource`, asks VizieR (or a mirror named by ``server``) for a catalogue and
gives back one astropy `~astropy.table.Table`; `import_vizier` puts that table into the
catalogue's ``sources`` with `import_sources`, recording the origin as
``vizier:<table name>`` (``vizier:J/AJ/144/192/table4``).

What it asks for
----------------
- **Every row.** astroquery's default ``row_limit`` is 50 and VizieR truncates silently; here
  the default is ``-1``, which astroquery sends as ``-out.max=unlimited``.
- **Every column** (``-out.all``) plus VizieR's computed J2000 positions in degrees
  (``-out.add=_RAJ2000,_DEJ2000``): the stored ``RAJ2000``/``DEJ2000`` are sexagesimal text
  in some catalogues and degrees in others, and may not be J2000 at all in old ones. The
  import uses ``_RAJ2000``/``_DEJ2000`` when they came back and no column was named.
- **No disk cache** unless asked (``cache=True``): astroquery caches ``get_catalogs`` answers
  for a week by default, which would hide a catalogue's corrections and fill the home
  directory.

Which sub-table
---------------
A VizieR catalogue (``J/AJ/144/192``) holds one or more tables (``J/AJ/144/192/table4``).
With ``table`` given, only that table is asked for (``table4`` or the full name). Without
it, a catalogue with several tables gives the table with RA and Dec columns and the most
rows; the table chosen is in ``meta["vizier_table"]`` (and every table's row count in
``meta["vizier_tables"]``).

Errors
------
An unknown catalogue, an empty answer, an HTTP error, a timeout, an untrusted certificate,
an answer that is not a VOTable or that does not parse: each is a `BinarycatError` of one
sentence, with VizieR's own error text where its VOTable carried one.

Examples
--------
>>> from binarycat.ingest.vizier import VizierSource      # doctest: +SKIP
>>> t = VizierSource().catalog("J/AJ/144/192")             # doctest: +SKIP
>>> t.meta["vizier_table"], len(t)                         # doctest: +SKIP
('J/AJ/144/192/table4', 3479)
"""

from __future__ import annotations

import math
import re
import warnings
from io import BytesIO
from typing import Callable

import requests
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from binarycat.catalog.sources import ImportResult, find_columns, import_sources
from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError

__all__ = ["COLUMNS", "VizierSource", "import_vizier"]

#: Columns asked for: all of them, plus the computed J2000 positions in degrees.
COLUMNS = ["**", "_RAJ2000", "_DEJ2000"]

# VizieR ids: J/A+A/572/A104, II/246/out, I/355/gaiadr3, B/iram/pdbi. The form body that
# astroquery sends is newline-joined, so anything else (spaces, newlines, '=' or ',') could
# change the request itself and is refused.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*(/[A-Za-z0-9+._-]+)*$")
_SERVER_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")


def _one_line(text: object) -> str:
    lines = [s.strip() for s in str(text).strip().splitlines() if s.strip()]
    line = lines[0] if lines else ""
    return line.rstrip(".")


def _check_id(what: str, value: str) -> str:
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise BinarycatError(
            f"{value!r} is not a VizieR {what} id; ids look like J/AJ/144/192 or J/AJ/144/192/table4."
        )
    return value


def _clean_server(server: str | None) -> str | None:
    if server is None:
        return None
    s = server.strip()
    if s.lower().startswith("http://"):
        raise BinarycatError(
            f"VizieR server {server!r} is plain HTTP; astroquery only speaks HTTPS, so give it as host:port."
        )
    if s.lower().startswith("https://"):
        s = s[len("https://"):]
    s = s.rstrip("/")
    if not s or not _SERVER_RE.match(s):
        raise BinarycatError(f"{server!r} is not a VizieR server; give it as host or host:port.")
    return s


def _votable_error(body: bytes) -> str | None:
    """The error text VizieR put in a VOTable's INFO elements, if any."""
    if not body.lstrip()[:1] == b"<":
        return None
    try:
        from astropy.io import votable

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vot = votable.parse(BytesIO(body), verify="ignore")
    except Exception:
        return None
    infos = list(vot.infos)
    for res in vot.resources:
        infos += list(res.infos)
        for tab in res.tables:
            infos += list(getattr(tab, "infos", []))
    for info in infos:
        key = (info.name or info.ID or "").lower()
        value = (info.value or "").strip()
        if key in ("error", "errors") or (key == "query_status" and value.upper() == "ERROR"):
            text = _one_line(info.content or "") or (value if value.upper() != "ERROR" else "")
            return text or "an unspecified error"
    return None


class VizierSource:
    """One VizieR server, asked through `astroquery.vizier.VizierClass`.

    Parameters
    ----------
    server : str, optional
        ``host`` or ``host:port`` of a VizieR mirror (astroquery always uses HTTPS); the
        default is astroquery's configured server (``vizier.cds.unistra.fr``).
    timeout : float
        Seconds to wait for the server to answer (connect, and each read).
    row_limit : int
        Most rows per table; ``-1`` (the default) asks for every row.
    cache : bool
        Let astroquery answer from, and write to, its disk cache.
    """

    def __init__(self, server: str | None = None, timeout: float = 60, row_limit: int = -1,
                 cache: bool = False):
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise BinarycatError(f"The VizieR timeout must be a positive number of seconds, not {timeout!r}.")
        if not isinstance(row_limit, int) or row_limit == 0 or row_limit < -1:
            raise BinarycatError(f"row_limit must be a positive number of rows or -1 for all, not {row_limit!r}.")
        self.server = _clean_server(server)
        self.timeout = float(timeout)
        self.row_limit = row_limit
        self.cache = bool(cache)

    def __repr__(self) -> str:
        return f"VizierSource(server={self.server_name!r}, timeout={self.timeout:g}, row_limit={self.row_limit})"

    @property
    def server_name(self) -> str:
        if self.server:
            return self.server
        from astroquery.vizier import conf

        return str(conf.server)

    def client(self):
        """A fresh `~astroquery.vizier.VizierClass` set up for this server."""
        from astroquery.vizier import VizierClass

        kwargs = dict(columns=list(COLUMNS), timeout=self.timeout, row_limit=self.row_limit)
        if self.server:
            kwargs["vizier_server"] = self.server
        return VizierClass(**kwargs)

    # -- queries ---------------------------------------------------------------------------
    def catalog(self, catalog_id: str, *, table: str | None = None, ra_col: str | None = None,
                dec_col: str | None = None) -> Table:
        """Every row of a catalogue, or of one of its tables.

        Parameters
        ----------
        catalog_id : str
            ``J/AJ/144/192``, or a table's full name ``J/AJ/144/192/table4``.
        table : str, optional
            A table of the catalogue (``table4``, or the full name); by default the table
            with RA/Dec columns and the most rows.
        ra_col, dec_col : str, optional
            Position columns to look for when choosing among several tables.
        """
        source = _source(catalog_id, table)
        client = self.client()
        tables = self._ask(
            f"catalogue {source}",
            lambda: client.get_catalogs_async(source),
            client,
            empty=f"VizieR has no rows for {source}; check the id (ids look like J/AJ/144/192).",
        )
        return _pick(tables, source, table, ra_col, dec_col)

    def cone(self, catalog_id: str, ra: float, dec: float, radius_arcsec: float, *,
             table: str | None = None, ra_col: str | None = None, dec_col: str | None = None) -> Table:
        """The rows of a catalogue within ``radius_arcsec`` of (``ra``, ``dec``) in degrees (J2000)."""
        source = _source(catalog_id, table)
        ra, dec, radius_arcsec = _cone_args(ra, dec, radius_arcsec)
        centre = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
        client = self.client()
        where = f"within {radius_arcsec:g} arcsec of RA {ra:.6f}, Dec {dec:+.6f}"
        tables = self._ask(
            f"a cone of {source}",
            lambda: client.query_region_async(centre, radius=radius_arcsec * u.arcsec, catalog=source,
                                              cache=self.cache),
            client,
            empty=f"VizieR has no rows of {source} {where}.",
        )
        return _pick(tables, source, table, ra_col, dec_col)

    # -- one request -----------------------------------------------------------------------
    def _ask(self, what: str, send: Callable[[], requests.Response], client, *, empty: str):
        """Send one request through astroquery and parse its answer into a TableList."""
        from astroquery import cache_conf
        from astroquery.exceptions import TableParseError

        where = f"VizieR at {self.server_name}"
        try:
            with cache_conf.set_temp("cache_active", self.cache):
                response = send()
        except requests.exceptions.Timeout:
            raise BinarycatError(
                f"{where} did not answer for {what} within {self.timeout:g} s; try again later or "
                "allow a longer timeout."
            ) from None
        except requests.exceptions.SSLError as exc:
            raise BinarycatError(
                f"Cannot make a trusted HTTPS connection to {where}: {_reason(exc)}."
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise BinarycatError(f"Cannot reach {where}: {_reason(exc)}.") from None
        except requests.exceptions.RequestException as exc:
            raise BinarycatError(f"The request to {where} for {what} failed: {_reason(exc)}.") from None

        body = response.content or b""
        if response.status_code >= 400:
            detail = _votable_error(body)
            raise BinarycatError(
                f"{where} answered HTTP {response.status_code}"
                + (f" {response.reason}" if response.reason else "")
                + f" for {what}" + (f": {detail}." if detail else "; try again later.")
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tables = client._parse_result(response)  # what astroquery's sync methods do
        except TableParseError as exc:
            reason = _one_line(getattr(client, "table_parse_error", "") or exc)
            raise BinarycatError(f"{where} answered {what} with a VOTable that cannot be parsed: {reason}.") from None
        except Exception as exc:
            raise BinarycatError(
                f"{where} answered {what} with a VOTable that cannot be parsed: {_one_line(exc)}."
            ) from None
        if tables is None:  # astroquery returns None for anything that is not XML, TSV or FITS
            kind = response.headers.get("Content-Type", "unknown content").split(";")[0]
            raise BinarycatError(f"{where} answered {what} with {kind}, not a VOTable.")
        if len(tables) == 0:
            detail = _votable_error(body)
            if detail:
                raise BinarycatError(f"{where} cannot give {what}: {detail}.")
            raise BinarycatError(empty)
        return tables


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, in one line."""
    text = str(exc)
    for pattern in (r"\[SSL: [A-Z_]+\] ([^()'\"]+)", r"Errno -?\d+\] ([^'\"()]+)", r"\] ([^'\"()]+)"):
        m = re.search(pattern, text)
        if m:
            return m.group(1).strip().rstrip(".")
    return _one_line(text) or type(exc).__name__


def _source(catalog_id: str, table: str | None) -> str:
    catalog_id = _check_id("catalogue", catalog_id)
    if table is None:
        return catalog_id
    table = _check_id("table", table)
    if "/" in table:
        return table
    if catalog_id.rsplit("/", 1)[-1] == table:  # J/AJ/144/192/table4 with table="table4"
        return catalog_id
    return f"{catalog_id}/{table}"


def _cone_args(ra, dec, radius_arcsec) -> tuple[float, float, float]:
    try:
        ra, dec, radius = float(ra), float(dec), float(radius_arcsec)
    except (TypeError, ValueError):
        raise BinarycatError(
            f"A cone needs numbers: RA {ra!r}, Dec {dec!r} and radius {radius_arcsec!r}."
        ) from None
    if not (math.isfinite(ra) and 0 <= ra < 360):
        raise BinarycatError(f"RA {ra} is outside [0, 360) degrees.")
    if not (math.isfinite(dec) and -90 <= dec <= 90):
        raise BinarycatError(f"Dec {dec} is outside [-90, 90] degrees.")
    if not (math.isfinite(radius) and radius > 0):
        raise BinarycatError(f"The cone radius must be a positive number of arcsec, not {radius_arcsec!r}.")
    return ra, dec, radius


def _has_positions(table: Table, ra_col, dec_col) -> bool:
    try:
        find_columns(table, None, ra_col, dec_col)
    except BinarycatError:
        return False
    return True


def _pick(tables, source: str, table: str | None, ra_col, dec_col) -> Table:
    """One table of an astroquery TableList, named in its meta."""
    names = list(tables.keys())
    counts = {n: len(tables[n]) for n in names}
    if len(names) == 1:
        name = names[0]
    elif table is not None:
        short = table.rsplit("/", 1)[-1]
        matches = [n for n in names if n == source or n.rsplit("/", 1)[-1] == short]
        if len(matches) != 1:
            raise BinarycatError(
                f"VizieR's answer for {source} holds the tables {', '.join(names)}, not just {table!r}."
            )
        name = matches[0]
    else:
        with_positions = [n for n in names if _has_positions(tables[n], ra_col, dec_col)]
        if not with_positions:
            raise BinarycatError(
                f"None of the tables of {source} ({', '.join(names)}) has RA/Dec columns; "
                "choose one with table= and name its columns."
            )
        name = max(with_positions, key=lambda n: counts[n])  # the first of equals
    out = tables[name]
    out.meta["vizier_table"] = name
    out.meta["vizier_tables"] = counts
    return out


def import_vizier(
    catalog: Catalog,
    catalog_id: str,
    *,
    ra: float | None = None,
    dec: float | None = None,
    radius_arcsec: float | None = None,
    table: str | None = None,
    server: str | None = None,
    id_col: str | None = None,
    ra_col: str | None = None,
    dec_col: str | None = None,
    timeout: float = 60,
) -> tuple[ImportResult, str]:
    """Add a VizieR catalogue (all of it, or a cone) to ``sources``.

    Ids already in the catalogue are left as they are, so a second import adds nothing.

    Parameters
    ----------
    catalog : Catalog
    catalog_id : str
        ``J/AJ/144/192`` or ``J/AJ/144/192/table4``.
    ra, dec, radius_arcsec : float, optional
        A cone (degrees, J2000; arcsec); all three or none.
    table : str, optional
        The table of the catalogue; by default the one with positions and the most rows.
    server : str, optional
        ``host:port`` of a VizieR mirror.
    id_col, ra_col, dec_col : str, optional
        Column names; by default the id is found by common names and the positions are
        VizieR's computed ``_RAJ2000``/``_DEJ2000`` (degrees) when present.
    timeout : float
        Seconds to wait for VizieR.

    Returns
    -------
    (ImportResult, str)
        The counts, and the full name of the VizieR table imported (also recorded as
        ``sources.origin`` = ``vizier:<name>``).
    """
    given = [v is not None for v in (ra, dec, radius_arcsec)]
    if any(given) and not all(given):
        raise BinarycatError("A cone needs all of ra, dec and radius_arcsec; give all three or none.")
    if (ra_col is None) != (dec_col is None):
        raise BinarycatError("Name both the RA and the Dec column, or neither.")
    src = VizierSource(server=server, timeout=timeout)
    if all(given):
        result = src.cone(catalog_id, ra, dec, radius_arcsec, table=table, ra_col=ra_col, dec_col=dec_col)
    else:
        result = src.catalog(catalog_id, table=table, ra_col=ra_col, dec_col=dec_col)
    name = result.meta["vizier_table"]
    if ra_col is None and "_RAJ2000" in result.colnames and "_DEJ2000" in result.colnames:
        ra_col, dec_col = "_RAJ2000", "_DEJ2000"
    ident, _, _ = find_columns(result, id_col, ra_col, dec_col)
    if ident is None:  # row numbers alone would collide with other catalogues' row numbers
        result = result.copy(copy_data=False)
        result["_source_id"] = [f"{name}#{i + 1}" for i in range(len(result))]
        ident = "_source_id"
    counts = import_sources(catalog, result, id_col=ident, ra_col=ra_col, dec_col=dec_col,
                            origin=f"vizier:{name}")
    return counts, name
