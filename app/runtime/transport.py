"""The one QStash REST v2 client: publish, batch, messages, schedules and dead letters.

`QSTASH_URL` decides where it goes: Upstash in production, the embedded server
(`app.devqstash`, mounted at `/qstash`) in development and tests. Options become the
`Upstash-*` headers of shared/docs/qstash-protocol.md section 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from app.errors import CurawayError


class TransportError(CurawayError):
    """QStash refused a request or could not be reached."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message to publish. Only the fields that are set become headers."""

    destination: str
    body: bytes | str | None = None
    method: str = "POST"
    content_type: str | None = "application/json"
    forward_headers: dict[str, str] = field(default_factory=dict)
    delay_s: int | None = None
    not_before: int | None = None  # unix seconds; wins over delay
    deduplication_id: str | None = None
    retries: int | None = None
    retry_delay: str | None = None  # expression in ms over `retried`
    callback: str | None = None
    failure_callback: str | None = None
    timeout_s: int | None = None
    label: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)  # raw Upstash-* headers

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {"Upstash-Method": self.method}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        for name, value in self.forward_headers.items():
            prefixed = name if name.lower().startswith("upstash-forward-") else f"Upstash-Forward-{name}"
            headers[prefixed] = str(value)
        optional = {
            "Upstash-Delay": None if self.delay_s is None else f"{self.delay_s}s",
            "Upstash-Not-Before": self.not_before,
            "Upstash-Deduplication-Id": self.deduplication_id,
            "Upstash-Retries": self.retries,
            "Upstash-Retry-Delay": self.retry_delay,
            "Upstash-Callback": self.callback,
            "Upstash-Failure-Callback": self.failure_callback,
            "Upstash-Timeout": None if self.timeout_s is None else f"{self.timeout_s}s",
            "Upstash-Label": self.label,
        }
        headers.update({name: str(value) for name, value in optional.items() if value is not None})
        headers.update(self.extra_headers)
        return headers

    def body_text(self) -> str | None:
        if isinstance(self.body, bytes):
            return self.body.decode()
        return self.body


@dataclass(frozen=True, slots=True)
class Published:
    message_id: str
    deduplicated: bool = False


class QStashClient:
    """Async QStash REST v2 client over a shared `httpx.AsyncClient`."""

    def __init__(self, base_url: str, token: str, http: httpx.AsyncClient) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._http = http

    async def publish(self, message: Message) -> Published:
        data = await self._request(
            "POST",
            f"/v2/publish/{message.destination}",
            content=message.body,
            headers=message.headers(),
        )
        return Published(data["messageId"], bool(data.get("deduplicated", False)))

    async def batch(self, messages: list[Message]) -> list[Published]:
        items = [{"destination": m.destination, "headers": m.headers(), "body": m.body_text()} for m in messages]
        data = await self._request("POST", "/v2/batch", json=items)
        return [Published(d["messageId"], bool(d.get("deduplicated", False))) for d in data]

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/v2/messages/{quote(message_id)}")

    async def cancel_message(self, message_id: str) -> None:
        await self._request("DELETE", f"/v2/messages/{quote(message_id)}", parse=False)

    async def upsert_schedule(self, message: Message, cron: str, *, schedule_id: str | None = None) -> str:
        """Create a schedule producing `message` on `cron`, or replace the one with `schedule_id`."""
        headers = {**message.headers(), "Upstash-Cron": cron}
        if schedule_id is not None:
            headers["Upstash-Schedule-Id"] = schedule_id
        path = f"/v2/schedules/{message.destination}"
        data = await self._request("POST", path, content=message.body, headers=headers)
        return str(data["scheduleId"])

    async def list_schedules(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/v2/schedules") or []

    async def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/v2/schedules/{quote(schedule_id)}")

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._request("DELETE", f"/v2/schedules/{quote(schedule_id)}", parse=False)

    async def pause_schedule(self, schedule_id: str) -> None:
        await self._request("PATCH", f"/v2/schedules/{quote(schedule_id)}/pause", parse=False)

    async def resume_schedule(self, schedule_id: str) -> None:
        await self._request("PATCH", f"/v2/schedules/{quote(schedule_id)}/resume", parse=False)

    async def list_dlq(self, *, cursor: str | None = None, count: int | None = None) -> dict[str, Any]:
        params = {k: v for k, v in {"cursor": cursor, "count": count}.items() if v is not None}
        return await self._request("GET", "/v2/dlq", params=params)

    async def get_dlq(self, dlq_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/v2/dlq/{quote(dlq_id)}")

    async def delete_dlq(self, dlq_id: str) -> None:
        await self._request("DELETE", f"/v2/dlq/{quote(dlq_id)}", parse=False)

    async def retry_dlq(self, dlq_id: str) -> Published:
        data = await self._request("POST", f"/v2/dlq/retry/{quote(dlq_id)}")
        return Published(data["messageId"])

    async def _request(self, method: str, path: str, *, parse: bool = True, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        try:
            response = await self._http.request(method, self._base + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"QStash at {self._base} unreachable: {exc!r}") from exc
        if not response.is_success:
            raise TransportError(f"QStash {method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if parse and response.content else None
