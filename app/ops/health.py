"""`GET /readyz` (the database and the QStash endpoint answer) and `GET /metrics` (Prometheus).

`/healthz` (app.main) stays cheap and does no I/O; `/readyz` does one query and one QStash
request, each with a short timeout, and answers 503 naming what failed.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.ops.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["ops"])

READY_TIMEOUT_S = 3.0


class ReadyRead(BaseModel):
    status: str  # ready | not ready
    checks: dict[str, str]  # check -> "ok" or what failed
    failing: list[str] | None = None


@router.get("/readyz", response_model=ReadyRead, responses={503: {"model": ReadyRead, "description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """200 when the database and QStash answer; 503 with `failing` naming those that do not."""
    services = request.app.state.services
    checks = {"database": _database(services), "qstash": _qstash(services)}
    results = await asyncio.gather(
        *(asyncio.wait_for(c, READY_TIMEOUT_S) for c in checks.values()), return_exceptions=True
    )
    failing = {name: _reason(r) for name, r in zip(checks, results, strict=True) if isinstance(r, BaseException)}
    body = {"status": "ready" if not failing else "not ready", "checks": {n: failing.get(n, "ok") for n in checks}}
    if failing:
        body["failing"] = sorted(failing)
    return JSONResponse(body, status_code=503 if failing else 200)


async def _database(services) -> None:  # noqa: ANN001
    async with services.sessions() as session:
        await session.execute(text("SELECT 1"))


async def _qstash(services) -> None:  # noqa: ANN001
    await services.qstash.list_schedules()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {READY_TIMEOUT_S:g} s"
    return f"{type(exc).__name__}: {exc}"[:300]


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    services = request.app.state.services
    ops = services.ops
    body = await ops.metrics.render(
        services.sessions, dead_letters=ops.dead_letter_counts, sse_clients=services.progress.clients + ops.sse_clients
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
