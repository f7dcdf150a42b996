"""Database plumbing shared by every layer: metadata, portable column types, the engine.

One SQLAlchemy 2 async code path serves SQLite (aiosqlite, the embedded default) and
Postgres (asyncpg, production). Dialect differences live here, in the stores' upserts and in
the runtime's hand-written SQL (`app/runtime/sql.py`: one-statement writes on Postgres, plain
statements for a step's write and a free lease on SQLite), nowhere else:

- SQLite runs in WAL mode with a busy timeout, and every transaction starts with
  `BEGIN IMMEDIATE`, so two writers queue instead of failing with "database is locked"
  when a reader tries to upgrade. A process keeps one SQLite connection: its transactions
  queue for it in order (the pool's wait), where several connections would busy-wait for
  SQLite's write lock with growing sleeps. Its statements run on the event loop's thread
  (`LoopSQLite`), not in aiosqlite's thread; one that finds another process's lock waits
  for it (the busy timeout) in aiosqlite's thread. The runtime's hottest writes (a step's,
  taking a free lease) run as plain statements on the driver's connection, one synchronous
  transaction each (`LoopSQLite.write`).
- Datetimes are stored as UTC and always come back timezone-aware (`UTCDateTime`).
- Postgres connections are checked at checkout (`_check_at_checkout`): one the server closed
  (a terminated backend, a restart) is replaced without a round trip (asyncpg saw the socket
  close), and one idle for `PING_IDLE_AFTER_S` or more is pinged, as `pool_pre_ping` would, so
  the hot path (a connection checked in a moment ago) does not pay a round trip per transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import JSON, DateTime, MetaData, event, exc
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = metadata


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that is always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


_SQLITE_DATETIME = sqlite.DATETIME().bind_processor(sqlite.dialect())


def sqlite_timestamp(value: datetime | None) -> str | None:
    """`value` as a `UTCDateTime` column stores it on SQLite (for `LoopSQLite.write`'s statements)."""
    if value is None:
        return None
    return _SQLITE_DATETIME(value.astimezone(UTC).replace(tzinfo=None))


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async driver."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


# Connections kept open: enough for the 16 eager drives (app/runtime/eager.py) and a few
# requests, so a busy process does not close and reopen connections (and, on Postgres, prepare
# every statement again on the new one).
POOL_SIZE = 20
# SQLite: how long a transaction waits for the process's one connection (as its busy timeout).
SQLITE_POOL_TIMEOUT_S = 30


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, echo=echo)
    engine = create_async_engine(url, echo=echo, pool_size=POOL_SIZE, max_overflow=10)
    _check_at_checkout(engine)
    return engine


# A pooled connection checked in less than this long ago is handed out without a ping.
PING_IDLE_AFTER_S = 1.0
_LAST_USED = "curaway_last_used"


def _check_at_checkout(engine: AsyncEngine) -> None:
    """What `pool_pre_ping` does, without its round trip on the hot path.

    A connection the server closed is replaced at once (asyncpg saw its socket close); one idle
    for `PING_IDLE_AFTER_S` or more is pinged. A failed ping that is a disconnect invalidates the
    whole pool (like `pool_pre_ping`) and the checkout is tried again on a new connection; any
    other error is raised.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():  # the server closed it (terminated, restarted)
            raise exc.InvalidatePoolError()
        if time.monotonic() - record.info.get(_LAST_USED, float("-inf")) < PING_IDLE_AFTER_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error
            raise


SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another process's write lock
T = TypeVar("T")


class LoopSQLite(aiosqlite.Connection):
    """aiosqlite's connection, with its statements run on the event loop's thread.

    A statement on a WAL database in the page cache takes microseconds; sending it to
    aiosqlite's thread and back takes far longer, and under load the answer then waits its turn
    in the event loop while the transaction holds SQLite's one write lock (measured: 219 -> 386-447
    steps/s, `bench/README.md`). So a statement runs here, at once, with a busy timeout of 0.
    One that finds another process's lock (SQLITE_BUSY: it did nothing) is run again in
    aiosqlite's thread, where it waits for the lock up to `SQLITE_BUSY_TIMEOUT_MS` without
    stopping the event loop; while anything of this connection is still in that thread (a
    caller cancelled while waiting does not stop it), the statements after it queue behind it
    there, so they run in order and never at the same time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent = 0  # calls handed to aiosqlite's thread (counted on the loop's thread only)
        self._done = 0  # of those, finished (counted in aiosqlite's thread only)

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._sent == self._done:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
        self._sent += 1
        return await super()._execute(self._in_thread, fn, *args, **kwargs)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the sqlite3 connection, as one write transaction (`BEGIN IMMEDIATE` ... `COMMIT`).

        For the runtime's hottest writes: plain statements, without SQLAlchemy's execution
        around each one. Run like any statement (above): an attempt that finds another
        process's lock has done nothing (an error in `fn` or the COMMIT rolls the transaction
        back before it is raised) and is run again whole in aiosqlite's thread.
        """
        return await self._execute(_write_transaction, self._conn, fn)

    def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        connection = self._conn
        try:
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            return fn(*args, **kwargs)
        finally:
            with contextlib.suppress(sqlite3.ProgrammingError):  # `fn` closed the connection
                connection.execute("PRAGMA busy_timeout=0")
            self._done += 1


def _write_transaction(connection: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = fn(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


def _connect_sqlite(database: str, **kwargs: Any) -> LoopSQLite:
    kwargs.pop("check_same_thread", None)
    connection = LoopSQLite(lambda: sqlite3.connect(database, check_same_thread=False, **kwargs), 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return connection


def _create_sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        echo=echo,
        connect_args={"async_creator_fn": _connect_sqlite, "timeout": 0},
        pool_size=1,
        max_overflow=0,
        pool_timeout=SQLITE_POOL_TIMEOUT_S,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=0")  # LoopSQLite waits for other processes' locks
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits on success and rolls back on error."""
    async with sessions() as session, session.begin():
        yield session
