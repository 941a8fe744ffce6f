"""Engines, connections, transactions and error mapping of the database layer.

One SQLAlchemy engine per database: SQLite (the embedded default, in WAL mode
with a busy timeout) or PostgreSQL through psycopg 3. Reads run on a pooled
connection without an explicit transaction (SQLite: autocommit statements); writes
run in short explicit transactions, ``BEGIN IMMEDIATE`` on SQLite so that two
writers queue on the busy timeout instead of failing at commit. Every error of
SQLAlchemy or of a driver becomes a carbonlake error in :meth:`Engine.errors`
(the one place): a unique violation a caller names becomes a ``LineageError``,
everything else a ``DatabaseError``, which the executions retry as transient
(locks, serialization failures, lost connections).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Row

from .._exceptions import ConfigurationError, DatabaseBusy, DatabaseError, LineageError

if TYPE_CHECKING:
    AnyRow = Row[*tuple[Any, ...]]

PAGE_SIZE = 65_536
"""Page size of a new SQLite database, in bytes (SQLite's largest)."""

LINEAGE_CACHE_KIB = 65_536
"""Page cache of a connection that writes lineage nodes, in KiB."""

_WRITE = "carbonlake_write"
"""Execution option of a connection whose transaction writes (SQLite: BEGIN IMMEDIATE)."""

Params = Mapping[str, Any]


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _reason(exc: BaseException) -> str:
    """The driver's message of a SQLAlchemy error (without SQLAlchemy's statement dump)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.split(" (Background on this error at:")[0].strip()


_BUSY_WORDS = ("locked", "busy", "could not serialize", "deadlock", "connection", "terminat")
"""Words of a driver's message that say the same transaction may succeed later."""


def _is_busy(exc: sa_exc.SQLAlchemyError) -> bool:
    """Whether the database was locked, a transaction failed to serialize or the
    connection went away: :class:`DatabaseBusy`, which the retry policy retries."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError) and any(
        word in _reason(exc).lower() for word in _BUSY_WORDS
    )


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver starts no transaction of its own: reads are autocommit statements
        # and writes begin explicitly (the "begin" listener below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # Big pages for a new database (the size is fixed when the file is first
            # written, so this does nothing to an existing one): writing a million
            # results and record nodes is about 30 % faster with 64 KiB pages than
            # with the default 4 KiB (benchmarks/floor.py, docs/performance.md).
            cursor.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            # Two processes opening a new workspace at once may both try to switch it
            # to WAL; the loser gets SQLITE_BUSY at once (no busy handler): try again.
            for attempt in range(50):
                try:
                    cursor.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    return on_connect


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Engine:
    """A carbonlake database's SQLAlchemy engine, with its transactions and errors."""

    def __init__(self, url: str, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.is_postgres = url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))
        if not (url.startswith("sqlite:///") or self.is_postgres):
            raise ConfigurationError(
                f"[database] url {redact(url)!r} is not supported; use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DB"
            )
        self.path: Path | str = redact(url) if self.is_postgres else Path(url[len("sqlite:///") :])
        if isinstance(self.path, Path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the folder of database {self.path}: {exc}"
                ) from exc
            self.engine = sa.create_engine(
                f"sqlite:///{self.path}",
                connect_args={
                    "timeout": busy_timeout_ms / 1000,
                    "check_same_thread": False,
                },
                # A connection per thread that works at once, like the threads of
                # `serve` and `watch`; more are opened (and closed after use) on demand.
                pool_size=8,
                max_overflow=-1,
            )
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout_ms))
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            try:
                driver_url = sa.make_url(url).set(drivername="postgresql+psycopg")
            except sa_exc.ArgumentError as exc:
                raise ConfigurationError(
                    f"[database] url {redact(url)!r} is not a database URL: {exc}"
                ) from exc
            try:
                import psycopg  # noqa: F401  (the postgres extra)
            except ImportError as exc:  # pragma: no cover - exercised only without the extra
                raise DatabaseError(
                    "PostgreSQL needs psycopg: pip install 'carbonlake[postgres]'"
                ) from exc
            self.engine = sa.create_engine(
                driver_url,
                connect_args={"connect_timeout": max(1, int(busy_timeout_ms / 1000))},
                # Positional parameters (psycopg's %s): bulk writes bind rows as tuples.
                paramstyle="format",
                pool_size=8,
                max_overflow=-1,
            )

    # -- errors ------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, doing: str, unique: Callable[[str], str] | None = None) -> Iterator[None]:
        """Map SQLAlchemy's and the driver's errors to carbonlake's: with ``unique``, an
        integrity (unique) violation becomes the ``LineageError`` it words; every other
        error a ``DatabaseError``: ``doing`` (its ``{db}`` the database) and the reason."""
        try:
            yield
        except sa_exc.IntegrityError as exc:
            if unique is not None:
                raise LineageError(unique(_reason(exc))) from exc
            raise DatabaseError(f"{doing.format(db=self.path)}: {_reason(exc)}") from exc
        except sa_exc.SQLAlchemyError as exc:
            message = f"{doing.format(db=self.path)}: {_reason(exc)}"
            raise (DatabaseBusy(message) if _is_busy(exc) else DatabaseError(message)) from exc

    # -- connections and transactions -------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection for reading (no explicit transaction on SQLite)."""
        with self.errors("cannot open database {db}"):
            conn = self.engine.connect()
        try:
            yield conn
        finally:
            with self.errors("cannot close a connection to {db}"):
                conn.close()

    @contextlib.contextmanager
    def transaction(self, unique: Callable[[str], str] | None = None) -> Iterator[Connection]:
        """A short write transaction, committed on success, rolled back on any error.

        ``unique`` words the ``LineageError`` of a unique violation (see :meth:`errors`).
        """
        with self.errors("writing to {db} failed", unique), self.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def insert(self, table: sa.TableClause) -> Any:
        """The dialect's INSERT of ``table`` (it has ``on_conflict_do_update``)."""
        if self.is_postgres:
            from sqlalchemy.dialects import postgresql  # not imported for SQLite

            return postgresql.insert(table)
        return sqlite_dialect.insert(table)

    def upsert_rows(
        self,
        conn: Connection,
        table: sa.TableClause,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert rows (sequences in ``columns`` order) or, where a row with the same first
        column (the table's key) exists, replace its other columns."""
        insert = self.insert(table)
        Engine.executemany(
            conn,
            insert.on_conflict_do_update(
                index_elements=[columns[0]],
                set_={c: insert.excluded[c] for c in columns[1:]},
            ),
            columns,
            rows,
        )

    @staticmethod
    def executemany(
        conn: Connection,
        statement: sa.Insert,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Execute a Core INSERT (or upsert) once per row of ``rows``, sequences in
        ``columns`` order: the statement is compiled for the connection's dialect with
        positional parameters and the rows go to the driver's ``executemany`` as they
        are (binding a million rows as dicts through SQLAlchemy took twice as long)."""
        if not rows:
            return
        compiled = statement.compile(dialect=conn.dialect, column_keys=list(columns))
        if list(compiled.positiontup or ()) != list(columns):
            conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])
            return
        conn.exec_driver_sql(str(compiled), [tuple(row) for row in rows])

    @staticmethod
    def execute_in(
        conn: Connection,
        sql: str,
        name: str,
        values: Sequence[Any],
        params: Params | None = None,
        chunk: int = 500,
    ) -> int:
        """Execute a write statement whose ``IN :name`` is a list of ``values``, ``chunk``
        values at a time, inside the caller's transaction; returns the rows it changed.

        The statement is compiled once per list length for the connection's dialect (the
        list rendered as positional parameters) and each chunk bound as a tuple:
        rendering an expanding list on every execution cost a fifth of an upsert."""
        statement = sa.text(sql).bindparams(sa.bindparam(name, expanding=True))
        given = dict(params or {})
        compiled: dict[int, tuple[str, list[int | str]]] = {}
        changed = 0
        for start in range(0, len(values), chunk):
            part = list(values[start : start + chunk])
            if not conn.dialect.positional:
                changed += conn.execute(statement, {**given, name: part}).rowcount
                continue
            if len(part) not in compiled:
                rendered = statement.bindparams(**given, **{name: part}).compile(
                    dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
                )
                order: list[int | str] = []
                for key in rendered.positiontup or ():
                    prefix, _, index = key.rpartition("_")
                    order.append(int(index) - 1 if prefix == name and index.isdigit() else key)
                compiled[len(part)] = (str(rendered), order)
            text, order = compiled[len(part)]
            bound = tuple(part[k] if isinstance(k, int) else given[k] for k in order)
            changed += conn.exec_driver_sql(text, bound).rowcount
        return changed

    # -- queries -------------------------------------------------------------------------

    def rows(self, sql: str | sa.Executable, params: Params | None = None) -> list[AnyRow]:
        """Every row of a query (rows read by index and, through ``_mapping``, by name)."""
        statement = sa.text(sql) if isinstance(sql, str) else sql
        with self.errors("query on {db} failed"), self.connect() as conn:
            return list(conn.execute(statement, dict(params or {})).all())

    def dicts(self, sql: str | sa.Executable, params: Params | None = None) -> list[dict[str, Any]]:
        """Every row of a query as a dict by column name."""
        return [dict(row._mapping) for row in self.rows(sql, params)]

    def scalar(self, sql: str | sa.Executable, params: Params | None = None) -> Any:
        """The first column of the first row (None without rows)."""
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def rows_in(
        self,
        sql: str,
        name: str,
        values: Sequence[Any],
        params: Params | None = None,
        chunk: int = 500,
    ) -> list[AnyRow]:
        """Rows of ``sql`` whose ``IN :name`` is an expanding list of ``values``, asked
        ``chunk`` values at a time (well under every database's parameter limit)."""
        statement = sa.text(sql).bindparams(sa.bindparam(name, expanding=True))
        found: list[AnyRow] = []
        for start in range(0, len(values), chunk):
            found += self.rows(
                statement, {**(params or {}), name: list(values[start : start + chunk])}
            )
        return found

    def stream(
        self, sql: str, params: Params | None, chunk: int, doing: str
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of a query as tuples, fetched ``chunk`` at a time (memory holds a chunk)."""
        with self.errors(doing), self.connect() as conn:
            result = conn.execution_options(yield_per=chunk).execute(
                sa.text(sql), dict(params or {})
            )
            for part in result.partitions():
                yield from (tuple(row) for row in part)

    def close(self) -> None:
        """Close every pooled connection."""
        with contextlib.suppress(sa_exc.SQLAlchemyError):
            self.engine.dispose()
