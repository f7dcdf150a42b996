"""Real databases for the suite: a fresh, migrated SQLite file or Postgres database per test.

Each backend is migrated once per session with Alembic into a template (a file for SQLite, a
`TEMPLATE` database for Postgres) and copied per test, so every test starts from exactly the
schema the migrations make, and tests that commit, crash and restart never share rows.

Postgres comes from `TEST_DATABASE_URL` (a plain `postgresql://user@host:port/db` URL to a
server where that user may create databases) or, when unset, from a throwaway server started
from the Postgres binaries (`tests/support/pgserver.py`). `CURAWAY_REQUIRE_POSTGRES=1` (CI)
turns "no Postgres" into a failure instead of a skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import uuid
from pathlib import Path

import asyncpg

from app.migrate import upgrade


def run_blocking(coroutine_fn, *args):  # noqa: ANN001, ANN201
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_fn(*args)).result()


def plain_pg_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def with_database(url: str, database: str) -> str:
    base = url.rsplit("/", 1)[0]
    return f"{base}/{database}"


class SqliteTemplates:
    def __init__(self, root: Path) -> None:
        self.template = root / "template.db"
        upgrade(f"sqlite+aiosqlite:///{self.template}")

    def fresh(self, directory: Path) -> str:
        target = directory / f"test-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(self.template, target)
        return f"sqlite+aiosqlite:///{target}"


class PostgresTemplates:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = plain_pg_url(admin_url)
        self.template = f"curaway_tmpl_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []
        run_blocking(self._execute, f'CREATE DATABASE "{self.template}"')
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # alembic's env runs its own loop
            pool.submit(upgrade, with_database(self.admin_url, self.template)).result()

    async def _execute(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def fresh(self) -> str:
        name = f"curaway_t_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return with_database(self.admin_url, name)

    async def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        names = [*self.created, self.template]
        run_blocking(self._execute, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names))


def postgres_required() -> bool:
    return os.environ.get("CURAWAY_REQUIRE_POSTGRES", "") not in ("", "0", "false")
