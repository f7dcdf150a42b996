"""Imports every module that defines tables, so Alembic and tests see the whole schema."""

from app.devqstash import models as devqstash_models  # noqa: F401
from app.runtime import models as runtime_models  # noqa: F401
