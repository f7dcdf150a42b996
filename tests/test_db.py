"""`app.db` on SQLite: statements on the event loop's thread, another process's lock waited for off it.

`LoopSQLite.write` (a whole transaction of plain statements, the runtime's hottest writes) runs the
same way, and all of it or none.

The lock is held by a real second process (`BEGIN IMMEDIATE` on the same file), as a CLI
command or a second server would hold it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory, transaction
from app.runtime.events import record_event
from app.runtime.models import Event

HOLD_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
"""


@asynccontextmanager
async def write_lock_held(url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another process holding SQLite's write lock until a line is written to its stdin."""
    path = make_url(url).database
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LOCK, str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"locked\n"
        yield holder
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def release(holder: asyncio.subprocess.Process) -> None:
    assert holder.stdin is not None
    holder.stdin.write(b"\n")
    await holder.stdin.drain()


async def add_event(sessions, type_: str) -> None:  # noqa: ANN001
    async with transaction(sessions) as session:
        record_event(session, type_, payload={})


async def count(sessions, type_: str) -> int:  # noqa: ANN001
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Event).where(Event.type == type_))


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def db(sqlite_templates, tmp_path) -> AsyncIterator[Database]:  # noqa: ANN001
    """A fresh migrated SQLite file and this process's engine on it (one connection)."""
    url = sqlite_templates.fresh(tmp_path)
    engine = create_engine(url)
    try:
        yield Database(url, engine, session_factory(engine))
    finally:
        await engine.dispose()


async def loop_turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_write_waits_for_another_processs_lock_while_the_loop_runs(db: Database):
    await add_event(db.sessions, "test.before")  # the connection is open, statements run on the loop
    async with write_lock_held(db.url) as holder:
        write = asyncio.create_task(add_event(db.sessions, "test.waited"))
        await loop_turns(50)  # the loop keeps turning: the wait for the lock is not on its thread
        assert not write.done(), write  # neither failed ("database is locked") nor done
        await release(holder)
        await asyncio.wait_for(write, 30)
        assert await count(db.sessions, "test.waited") == 1
        await add_event(db.sessions, "test.after")  # and the loop's thread has the connection back
    assert await count(db.sessions, "test.after") == 1


async def test_a_write_cancelled_while_waiting_leaves_the_connection_usable(db: Database):
    """SQLAlchemy discards the connection whose BEGIN was cancelled (its close queues behind that BEGIN,
    still waiting in aiosqlite's thread); the next write waits for the lock on a new connection."""
    await add_event(db.sessions, "test.before")
    async with write_lock_held(db.url) as holder:
        write = asyncio.create_task(add_event(db.sessions, "test.cancelled"))
        await loop_turns(50)
        write.cancel()
        next_write = asyncio.create_task(add_event(db.sessions, "test.next"))
        await loop_turns(50)
        await release(holder)
        await asyncio.wait_for(asyncio.gather(write, return_exceptions=True), 30)
        await asyncio.wait_for(next_write, 30)
    assert write.cancelled()
    assert (await count(db.sessions, "test.cancelled"), await count(db.sessions, "test.next")) == (0, 1)
    await add_event(db.sessions, "test.after")
    assert await count(db.sessions, "test.after") == 1


async def test_a_statement_after_one_waiting_in_the_thread_runs_after_it(db: Database):
    """One connection, two statements: the second, sent while the first waits for the lock, waits behind it."""
    async with db.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        async with write_lock_held(db.url) as holder:
            begin = asyncio.create_task(driver.execute("BEGIN IMMEDIATE"))
            await loop_turns(50)
            insert = asyncio.create_task(
                driver.execute(
                    "INSERT INTO events (type, payload, created_at) VALUES ('test.queued', '{}', '2026-01-01')"
                )
            )
            await loop_turns(50)
            assert not begin.done() and not insert.done()
            await release(holder)
            await asyncio.wait_for(asyncio.gather(begin, insert), 30)
        assert driver.in_transaction  # the INSERT ran inside the BEGIN, not before it
        await driver.commit()
    assert await count(db.sessions, "test.queued") == 1


def insert_events(*types: str) -> Callable[[sqlite3.Connection], int]:
    """A `LoopSQLite.write` body: one event row per type; the count of rows written."""

    def body(connection: sqlite3.Connection) -> int:
        for type_ in types:
            connection.execute(
                "INSERT INTO events (type, payload, created_at) VALUES (?, '{}', '2026-01-01')", (type_,)
            )
        return len(types)

    return body


async def test_a_write_transaction_waits_for_another_processs_lock_and_runs_whole(db: Database):
    async with db.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        async with write_lock_held(db.url) as holder:
            write = asyncio.create_task(driver.write(insert_events("test.one", "test.two")))
            await loop_turns(50)  # the attempt on the loop's thread found the lock and wrote nothing
            assert not write.done(), write
            assert not driver.in_transaction
            await release(holder)
            assert await asyncio.wait_for(write, 30) == 2
        assert not driver.in_transaction  # committed
    assert (await count(db.sessions, "test.one"), await count(db.sessions, "test.two")) == (1, 1)


async def test_a_write_transaction_that_raises_writes_nothing(db: Database):
    def refused(connection: sqlite3.Connection) -> None:
        insert_events("test.refused")(connection)
        raise LookupError("refused after the first write")

    async with db.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        with pytest.raises(LookupError, match="refused after the first write"):
            await driver.write(refused)
        assert not driver.in_transaction  # rolled back, and the connection takes the next write
        assert await driver.write(insert_events("test.next")) == 1
    assert (await count(db.sessions, "test.refused"), await count(db.sessions, "test.next")) == (0, 1)
