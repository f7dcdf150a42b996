"""FastAPI dependencies any router may use: the request's session and the app's shared objects.

Each reads what `app.main.create_app` built once per app (`app.state.services`, an
`app.services.Services`) and is typed by what it returns; a route asks only for what it uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.runtime.runtime import Runtime
from app.storage import ObjectStorage


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back on error.

    A service that must make its writes visible to others before it returns (the upload, before
    it starts the run) commits itself; whatever it writes after that is committed here.
    `scope="function"` (below) makes that commit happen before the response is sent: a client
    that got its 201 can read what it created, and a failed commit is a 500, never a lost write.
    """
    async with get_sessions(request)() as session:
        yield session
        await session.commit()


def get_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """For routes that must not hold a session open, such as a stream."""
    return request.app.state.services.sessions


def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.services.runtime


def get_storage(request: Request) -> ObjectStorage:
    return request.app.state.services.storage


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
StorageDep = Annotated[ObjectStorage, Depends(get_storage)]
