"""One webhook attempt: check the URL again, sign, POST, and classify the answer.

| answer | outcome |
|---|---|
| 2xx | `delivered` |
| 408, 425, 429, 5xx, a timeout, a connection error | `retry` (honouring `Retry-After`) |
| any other status (4xx, an unfollowed 3xx) | `dead_lettered` at once |
| the URL no longer passes `urls.resolve_target` | `dead_lettered`, nothing sent |

The request goes to an address the safety check accepted (the host name travels in `Host` and in
TLS SNI, so certificates are still checked against it): a second DNS answer cannot redirect it.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from app.providers.urls import UnsafeWebhookURL, resolve_target

RETRYABLE_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: str  # delivered | retry | dead_lettered
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after_s: float | None = None


def classify(status: int) -> str:
    if 200 <= status < 300:
        return "delivered"
    if status in RETRYABLE_STATUSES or status >= 500:
        return "retry"
    return "dead_lettered"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _pinned(url: str, address: str) -> httpx.URL:
    return httpx.URL(url).copy_with(host=address)


async def send(
    http: httpx.AsyncClient,
    url: str,
    body: str,
    headers: dict[str, str],
    *,
    timeout_s: float,
    allow_private: bool,
    excerpt_chars: int,
) -> AttemptResult:
    """POST `body` to `url` once and say what came of it (never raises for the provider's faults)."""
    try:
        target = await resolve_target(url, allow_private=allow_private)
    except UnsafeWebhookURL as exc:
        return AttemptResult("dead_lettered", error=f"refused: {exc.detail}")
    request_url = _pinned(url, target.addresses[0])
    host_header = httpx.URL(url).netloc.decode()
    extensions = {"sni_hostname": target.host} if request_url.scheme == "https" else {}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):  # the whole exchange, however slowly it drips
            async with http.stream(
                "POST",
                request_url,
                content=body.encode(),
                headers={**headers, "content-type": "application/json", "host": host_header},
                timeout=timeout_s,
                extensions=extensions,
                follow_redirects=False,
            ) as response:
                excerpt = await _excerpt(response, excerpt_chars)
    except (TimeoutError, httpx.TimeoutException) as exc:
        error = f"timeout after {timeout_s:g} s ({type(exc).__name__})"
        return AttemptResult("retry", latency_ms=_ms(started), error=error)
    except httpx.HTTPError as exc:
        return AttemptResult("retry", latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:500])
    return AttemptResult(
        classify(response.status_code),
        status_code=response.status_code,
        latency_ms=_ms(started),
        excerpt=excerpt,
        retry_after_s=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
    )


async def _excerpt(response: httpx.Response, chars: int) -> str | None:
    """The start of the answer: at most about `chars` characters are read, never the whole body."""
    if chars <= 0:
        return None
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= chars * 4:  # enough bytes for `chars` characters in any UTF-8
            break
    return data.decode(response.encoding or "utf-8", errors="replace")[:chars]


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
