"""Fixtures for the embedded QStash server: the server on the test's database, and receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.devqstash.support import QStashServer, Recorder, Responder, running_qstash
from tests.support.live import serve


@pytest.fixture
async def qstash(database_url: str) -> AsyncIterator[QStashServer]:
    async with running_qstash(database_url) as server:
        yield server


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Any]]:
    """`await receivers(respond=None)` starts one more recording receiver."""
    async with AsyncExitStack() as stack:

        async def start(respond: Responder | None = None) -> Recorder:
            recorder = Recorder(respond) if respond else Recorder()
            await stack.enter_async_context(serve(recorder.app))
            return recorder

        yield start
