"""`Services`: the app's long-lived objects, built once per app by `app.main.build_services`.

Routes never take the whole container: each asks for what it uses through a typed dependency
(`app.dependencies`, `app.auth.dependencies`, `app.cases.progress`). The CLI and the tests use it
directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.tokens import TokenService
from app.cases.progress import ProgressFeed
from app.config import Settings
from app.devqstash import DevQStash
from app.ops.state import OpsState
from app.runtime.runtime import Runtime
from app.runtime.transport import QStashClient
from app.storage import ObjectStorage


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request, a step or a CLI command may need."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    qstash: QStashClient
    runtime: Runtime
    devqstash: DevQStash | None
    tokens: TokenService
    storage: ObjectStorage
    progress: ProgressFeed
    ops: OpsState | None = None  # usage, dead letters, metrics (app/ops)
