"""Request-scoped FastAPI dependencies: a session whose transaction the request owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back on error.

    `scope="function"` below makes the commit happen before the response is sent: a client
    that got its 201 can read what it created, and a failed commit is a 500, never a lost write.
    """
    async with request.app.state.services.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(db_session, scope="function")]


def services(request: Request) -> Any:
    return request.app.state.services


ServicesDep = Annotated[Any, Depends(services)]
