"""Suite-wide fixtures: every database-backed test runs on SQLite and on Postgres.

`database_url` is a fresh database migrated by Alembic, one per test (see
tests/support/databases.py). Tests that need the service use `tests.support.live`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.databases import PostgresTemplates, SqliteTemplates, postgres_required
from tests.support.pgserver import ThrowawayPostgres


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def postgres_templates() -> Iterator[PostgresTemplates | None]:
    url = os.environ.get("TEST_DATABASE_URL")
    server = None
    try:
        if not url:
            server = ThrowawayPostgres()
            url = server.start()
        templates = PostgresTemplates(url)
    except Exception as exc:  # no Postgres to be had
        if server:
            server.stop()
        if postgres_required():
            pytest.fail(f"Postgres is required (CURAWAY_REQUIRE_POSTGRES) but unavailable: {exc}")
        yield None
        return
    yield templates
    templates.drop_all()
    if server:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest,
    tmp_path,  # noqa: ANN001
    sqlite_templates: SqliteTemplates,
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_templates.fresh(tmp_path)
        return
    templates: PostgresTemplates | None = request.getfixturevalue("postgres_templates")
    if templates is None:
        pytest.skip("no Postgres available (set TEST_DATABASE_URL)")
    url = await templates.fresh()
    yield url
    await templates.drop(url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` (real processes, real timeouts: a minute or more each) first.

    Under `pytest -n auto --dist worksteal` each worker then starts on long tests and the many
    short ones fill the gaps at the end, instead of a long test starting last and running on
    alone. The order is otherwise the collection order (xdist needs it the same on every worker).
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
