"""The models match the schema the migrations create (`alembic check`, on both databases)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

import app.models  # noqa: F401  (registers every table on the metadata)
from app.db import create_engine, metadata

# Made by migrations but not a model: a materialized view on Postgres, a rebuilt table on SQLite.
NOT_MODELS = {"analytics_daily"}


def _include_name(name: str | None, type_: str, _parents: Any) -> bool:
    return not (type_ == "table" and name in NOT_MODELS)


def _differences(connection: Connection) -> list[Any]:
    opts = {"compare_type": True, "render_as_batch": True, "include_name": _include_name}
    context = MigrationContext.configure(connection, opts=opts)
    return compare_metadata(context, metadata)


async def test_the_models_match_the_migrated_schema(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
