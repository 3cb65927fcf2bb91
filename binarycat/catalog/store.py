"""Opening, creating and holding a catalogue directory.

A catalogue is one directory::

    catalog.duckdb   tables, views, schema version
    stamps/          Parquet shards of stamp arrays, partitioned by HEALPix pixel
    lightcurves/     Parquet shards of light-curve arrays
    models/          checkpoints, named by model id
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from binarycat.catalog.schema import CREATE_STATEMENTS, MIGRATIONS, SCHEMA_VERSION
from binarycat.errors import BinarycatError, CatalogVersionError

__all__ = ["Catalog", "DEFAULT_CATALOG", "default_catalog_dir"]

DEFAULT_CATALOG = "binarycat-catalog"
DB_NAME = "catalog.duckdb"
SUBDIRS = ("stamps", "lightcurves", "models")


def default_catalog_dir() -> Path:
    """``$BINARYCAT_CATALOG`` if set, else ``./binarycat-catalog``."""
    return Path(os.environ.get("BINARYCAT_CATALOG", DEFAULT_CATALOG))


class Catalog:
    """A catalogue directory with its open DuckDB connection.

    Parameters
    ----------
    path : str or Path
        The catalogue directory.
    create : bool
        Create the directory and schema if they do not exist. When False, a missing
        catalogue is an error.
    read_only : bool
        Open DuckDB read-only: any statement that would change the catalogue fails.

    Examples
    --------
    >>> with Catalog("my-catalog", create=True) as cat:          # doctest: +SKIP
    ...     cat.sql("select count(*) from sources").fetchone()
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._released = False
        db = self.path / DB_NAME
        if not db.exists():
            if not create or read_only:
                raise BinarycatError(
                    f"No catalogue at {self.path}; create one with `binarycat --catalog {self.path} init`."
                )
            if self.path.exists() and not self.path.is_dir():
                raise BinarycatError(f"{self.path} exists and is not a directory.")
        if not read_only:
            for sub in SUBDIRS:
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        self.con = self._connect()
        try:
            self._check_version()
        except BaseException:
            self.con.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        db = self.path / DB_NAME
        try:
            return duckdb.connect(str(db), read_only=self.read_only)
        except duckdb.Error as exc:
            raise BinarycatError(f"Cannot open {db}: {_first_line(exc)}") from None

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def released(self, *, wait_minutes: float = 30.0,
                 on_wait: Callable[[str], object] | None = None) -> Iterator[Catalog]:
        """Close the database file for a long computation that needs nothing from it, then reopen it.

        DuckDB lets a process that writes a database file hold it alone: while it is open here,
        no other process can open it, not even to read. A training run that has read its stamps
        into memory releases the file, so ``binarycat query`` or an ingest can run beside it.

        Parameters
        ----------
        wait_minutes : float
            On reopening, how long to wait for another process that holds the file meanwhile
            (an ingest, a query) to let it go, retrying every two seconds.
        on_wait : callable, optional
            Called once with a sentence when reopening has to wait.

        Raises
        ------
        BinarycatError
            When the file is still held by another process after ``wait_minutes``.

        Examples
        --------
        >>> with cat.released():                                    # doctest: +SKIP
        ...     model = train_for_hours(stamps_in_memory)
        """
        self.con.close()
        self._released = True
        try:
            yield self
        except BaseException:
            with suppress(BinarycatError):  # the error inside matters more than a busy file
                self._reopen(0.0, None)
            raise
        self._reopen(wait_minutes, on_wait)

    def _reopen(self, wait_minutes: float, on_wait: Callable[[str], object] | None) -> None:
        deadline = time.monotonic() + 60.0 * wait_minutes
        told = False
        while True:
            try:
                self.con = self._connect()
                self._released = False
                return
            except BinarycatError as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise
                if on_wait is not None and not told:
                    on_wait(f"Waiting for another process to let go of {self.path / DB_NAME}.")
                    told = True
                time.sleep(2.0)

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._released:
            return f"<Catalog {str(self.path)!r} released>"
        mode = "read-only" if self.read_only else "read-write"
        return f"<Catalog {str(self.path)!r} schema v{self.schema_version} {mode}>"

    # -- schema ----------------------------------------------------------------------------
    def _stored_version(self) -> int | None:
        try:  # information_schema costs tens of milliseconds; the meta table is one lookup
            rows = self.con.execute("select value from meta where key = 'schema_version'").fetchall()
        except duckdb.CatalogException:
            return None
        return int(rows[0][0]) if rows else None

    def _check_version(self) -> None:
        version = self._stored_version()
        if version is not None and version > SCHEMA_VERSION:
            raise CatalogVersionError(
                f"{self.path} has schema version {version}, newer than the {SCHEMA_VERSION} this "
                "binarycat understands; upgrade binarycat to open it."
            )
        if self.read_only:
            if version is None:
                raise BinarycatError(f"{self.path} holds no binarycat schema.")
            return
        with self.transaction():
            if version is None:
                self.con.execute(CREATE_STATEMENTS)
                version = SCHEMA_VERSION
            while version < SCHEMA_VERSION:
                self.con.execute(MIGRATIONS[version])
                version += 1
            self.con.execute(
                "insert or replace into meta values ('schema_version', ?)", [str(version)]
            )

    @property
    def schema_version(self) -> int:
        return self._stored_version() or 0

    # -- SQL helpers -----------------------------------------------------------------------
    def sql(self, query: str, params=None) -> duckdb.DuckDBPyConnection:
        """Execute ``query`` with optional bound ``params`` and return the cursor."""
        return self.con.execute(query, params) if params is not None else self.con.execute(query)

    def transaction(self) -> "_Transaction":
        """Context manager: BEGIN, then COMMIT on success or ROLLBACK on any exception."""
        return _Transaction(self.con)

    def table_count(self, table: str) -> int:
        return self.con.execute(f'select count(*) from "{table}"').fetchone()[0]

    def resolve(self, relative: str | os.PathLike) -> Path:
        """Absolute path of a file recorded relative to the catalogue directory."""
        return self.path / relative


class _Transaction:
    def __init__(self, con):
        self.con = con

    def __enter__(self):
        self.con.execute("begin transaction")
        return self.con

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.con.execute("commit")
        else:
            self.con.execute("rollback")
        return False


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
