"""Named SQL queries (``binarycat/queries/*.sql``) and a read-only runner for them and raw SQL.

Each ``.sql`` file starts with a comment block: its purpose, then one line per parameter,
``-- param NAME: what it does (default ...)``. Parameters are bound as DuckDB variables
(``SET VARIABLE NAME = ?``, a prepared statement: values are never pasted into SQL text) and
read in the query with ``getvariable('NAME')``, which also works inside PIVOT, where
prepared-statement parameters do not. A parameter the caller does not give is NULL, so a
query gives each one its default with ``coalesce``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from binarycat.catalog.store import Catalog
from binarycat.errors import BinarycatError, QueryError

__all__ = ["NamedQuery", "list_queries", "get_query", "run_query", "run_sql"]

_PARAM = re.compile(r"^--\s*param\s+(\w+)\s*:\s*(.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: dict[str, str] = field(default_factory=dict)
    sql: str = ""


def _parse(name: str, text: str) -> NamedQuery:
    desc, params = [], {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _PARAM.match(line)
        if m:
            params[m.group(1)] = m.group(2).strip()
        else:
            desc.append(line[2:].strip())
    return NamedQuery(name, " ".join(d for d in desc if d), params, text)


def list_queries() -> list[NamedQuery]:
    """Every named query shipped with binarycat, by name."""
    files = resources.files("binarycat.queries")
    out = [
        _parse(f.name[: -len(".sql")], f.read_text())
        for f in files.iterdir() if f.name.endswith(".sql")
    ]
    return sorted(out, key=lambda q: q.name)


def get_query(name: str) -> NamedQuery | None:
    return next((q for q in list_queries() if q.name == name), None)


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pa.Table:
    """Run one SQL text with its variables set; DuckDB's complaint becomes a one-line `QueryError`."""
    con = con.cursor()  # a connection of its own: no pending result, its own variables
    try:
        for name, value in (params or {}).items():
            if not _NAME.match(name):
                raise BinarycatError(f"Parameter name {name!r} is not a plain identifier.")
            con.execute(f"SET VARIABLE {name} = ?", [value])
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as exc:
        msg = " ".join(str(exc).split())
        if "read-only" in msg.lower() or "read only" in msg.lower():
            msg = "the catalogue is opened read-only for queries, so statements that change it are refused; " + msg
        raise QueryError(f"Query failed: {msg}") from None


def run_query(catalog_dir: str | Path, name_or_sql: str, params: dict | None = None) -> pa.Table:
    """Run a named query or raw SQL against a catalogue opened read-only.

    Parameters
    ----------
    catalog_dir : path
        The catalogue directory.
    name_or_sql : str
        A name from `list_queries` or a SQL statement.
    params : dict, optional
        Values for the query's ``$NAME`` parameters.

    Returns
    -------
    pyarrow.Table
    """
    params = dict(params or {})
    named = get_query(name_or_sql) if _NAME.match(name_or_sql.strip()) else None
    if named is None and _NAME.match(name_or_sql.strip()):
        known = ", ".join(q.name for q in list_queries())
        raise BinarycatError(f"No named query {name_or_sql!r}; named queries are {known}.")
    if named is not None:
        unknown = set(params) - set(named.params)
        if unknown:
            raise BinarycatError(
                f"Query {named.name!r} has no parameter {sorted(unknown)[0]!r}; "
                f"it takes {', '.join(named.params) or 'none'}."
            )
        params = {p: params.get(p) for p in named.params}
        sql = named.sql
    else:
        sql = name_or_sql
    with Catalog(catalog_dir, create=False, read_only=True) as cat:
        return run_sql(cat.con, sql, params or None)
