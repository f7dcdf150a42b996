"""Run the Alembic migrations programmatically (the CLI, `make run` and the tests use this).

The migrations are not package data: they live in `migrations/` of the source tree, which the
image copies next to the installed package (`MIGRATIONS_DIR`). Where they are looked for, in order:
the `migrations_dir` given (the MIGRATIONS_DIR setting), `migrations/` of a source checkout (an
editable install), `migrations/` under the working directory. `alembic.ini` is read when it sits
beside that directory; the migrations need nothing from it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.config import PROJECT_ROOT


class MigrationsNotFound(Exception):
    """No `migrations/` directory (with its env.py) where it was looked for."""


def locate_migrations(migrations_dir: Path | None = None) -> Path:
    """The directory holding `env.py` and `versions/`."""
    candidates = [migrations_dir] if migrations_dir else [PROJECT_ROOT / "migrations", Path.cwd() / "migrations"]
    for candidate in candidates:
        if candidate is not None and (candidate / "env.py").is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates if c is not None)
    raise MigrationsNotFound(
        f"no Alembic migrations (env.py) in {looked}: set MIGRATIONS_DIR to the migrations/ directory"
    )


def alembic_config(database_url: str, migrations_dir: Path | None = None) -> Config:
    location = locate_migrations(migrations_dir)
    ini = location.parent / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head", *, migrations_dir: Path | None = None) -> None:
    """Bring the database at `database_url` to `revision`. Blocking: call it off the event loop."""
    command.upgrade(alembic_config(database_url, migrations_dir), revision)
