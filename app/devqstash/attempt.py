"""One delivery attempt over real HTTP, and what came of it.

Delivered headers (protocol doc section 4): every `Upstash-Forward-X` as `X`, then the headers
QStash owns: `Upstash-Signature` (signed for exactly `message.url`), `Upstash-Message-Id`,
`Upstash-Retried`, `Upstash-Schedule-Id`, `Upstash-Caller-Ip`, `User-Agent: Upstash-QStash`
and the message's Content-Type. Forwarded hop-by-hop or stale copies (`host`,
`content-length`, `connection`, ...) are dropped, and QStash's own headers always win over
forwarded copies, because SDKs forward every header of the request they came from.
The body is sent unchanged. An attempt never raises: failures become an `Outcome`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from app.devqstash.models import QStashMessage
from app.devqstash.signing import sign_delivery
from app.devqstash.spec import canonical

USER_AGENT = "Upstash-QStash"
HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "accept-encoding",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "trailers",
    }
)
ABANDONED = "the previous attempt was abandoned: its deliverer died (its claim lapsed) before it answered"
QSTASH_OWNED = frozenset(
    {
        "upstash-signature",
        "upstash-message-id",
        "upstash-retried",
        "upstash-schedule-id",
        "upstash-caller-ip",
        "upstash-topic-name",
        "user-agent",
    }
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt; `status` is None when no HTTP response came back."""

    status: int | None
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def abandoned(self) -> bool:
        """The attempt's deliverer died: no response, and no reason to wait before the next try."""
        return self.status is None and self.error == ABANDONED

    @property
    def non_retryable(self) -> bool:
        flag = self.header("upstash-nonretryable-error")
        return self.status == 489 and (flag or "").strip().lower() == "true"

    def retry_after_s(self) -> float | None:
        """`Retry-After` seconds of a 429 or 503, if it gave a usable number."""
        value = self.header("retry-after")
        if self.status not in (429, 503) or value is None:
            return None
        try:
            seconds = float(value.strip())
        except ValueError:
            return None
        return seconds if seconds >= 0 else None

    def header(self, name: str) -> str | None:
        for key, values in self.headers.items():
            if key.lower() == name and values:
                return values[0]
        return None


def delivery_headers(message: QStashMessage, *, signature: str) -> dict[str, str]:
    """The headers of one delivery of `message`."""
    headers = {name: value for name, value in message.forward_headers.items() if _forwardable(name)}
    if message.content_type:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = message.content_type
    headers.update(
        {
            "User-Agent": USER_AGENT,
            "Upstash-Signature": signature,
            "Upstash-Message-Id": message.id,
            "Upstash-Retried": str(message.retried),
        }
    )
    if message.schedule_id:
        headers["Upstash-Schedule-Id"] = message.schedule_id
    if message.caller_ip:
        headers["Upstash-Caller-Ip"] = message.caller_ip
    return headers


def _forwardable(name: str) -> bool:
    lower = name.lower()
    return lower not in HOP_BY_HOP and lower not in QSTASH_OWNED and not lower.startswith("proxy-")


async def attempt(
    http: httpx.AsyncClient, message: QStashMessage, *, signing_key: str, timeout_s: float, now: float
) -> Outcome:
    """Deliver `message` once; never raises (except cancellation)."""
    signature = sign_delivery(message.body, message.url, signing_key, now=now)
    try:
        response = await http.request(
            message.method,
            message.url,
            content=message.body or None,
            headers=delivery_headers(message, signature=signature),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        return Outcome(status=None, error=f"timed out after {timeout_s:g}s ({type(exc).__name__})")
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return Outcome(status=None, error=f"request failed: {exc!r}")
    return Outcome(status=response.status_code, headers=canonical_headers(response.headers), body=response.content)


def canonical_headers(headers: httpx.Headers) -> dict[str, list[str]]:
    """`{Canonical-Name: [values]}`, like QStash (written in Go) reports headers."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for name, value in headers.multi_items():
        grouped[canonical(name)].append(value)
    return dict(grouped)
