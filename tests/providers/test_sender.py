"""One attempt against real local receivers: how each answer is classified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.providers.sender import parse_retry_after, send
from tests.support.live import serve


def _app() -> Starlette:
    async def answer(request: Request) -> Response:
        status = int(request.path_params["status"])
        headers = {"Retry-After": "7"} if status == 429 else {}
        if status == 302:
            headers = {"Location": "https://elsewhere.example/"}
        return PlainTextResponse("x" * 100_000, status_code=status, headers=headers)

    return Starlette(routes=[Route("/s/{status:int}", answer, methods=["POST"])])


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (408, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (400, "dead_lettered"),
        (404, "dead_lettered"),
        (410, "dead_lettered"),
        (302, "dead_lettered"),
    ],
)
async def test_each_answer_is_delivered_retried_or_dead_lettered(status, outcome):
    async with serve(lambda _: _app()) as (base_url, _), httpx.AsyncClient() as http:
        result = await send(http, f"{base_url}/s/{status}", "{}", {}, timeout_s=5, allow_private=True, excerpt_chars=50)
    assert (result.outcome, result.status_code) == (outcome, status)
    assert result.excerpt == "x" * 50 and result.latency_ms is not None
    assert result.retry_after_s == (7.0 if status == 429 else None)


async def test_a_connection_error_is_retried():
    async with httpx.AsyncClient() as http:
        result = await send(http, "http://127.0.0.1:9/h", "{}", {}, timeout_s=2, allow_private=True, excerpt_chars=50)
    assert result.outcome == "retry" and result.status_code is None and result.error


def test_retry_after_takes_seconds_or_an_http_date():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
