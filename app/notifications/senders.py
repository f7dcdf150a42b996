"""Outbound delivery of notifications (mail or SMS), behind one small interface.

`Sender.send(notification)` hands a notification to a gateway. Every send carries the
notification's idempotency key (`Idempotency-Key` header), so a send repeated after a crash
between sending and recording it is dropped by the gateway: the patient gets it once.
`NOTIFY_SENDER=none` (the default) sends nothing outside: notifications then reach patients
in-app only, as events on their case's SSE stream.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from app.errors import CurawayError
from app.notifications.models import Notification


class SendFailed(CurawayError):
    """The gateway did not take the notification; the step retries it."""


class Sender(Protocol):
    async def send(self, notification: Notification) -> None:
        """Hand `notification` to the gateway; raise `SendFailed` when it was not taken."""
        ...


class HttpSender:
    """POSTs JSON to a mail/SMS gateway (`NOTIFY_HTTP_URL`), with the idempotency key."""

    def __init__(self, url: str, token: str, http: httpx.AsyncClient) -> None:
        self.url, self.token, self.http = url, token, http

    async def send(self, notification: Notification) -> None:
        body = {
            "id": notification.id,
            "kind": notification.kind,
            "patient_id": notification.patient_id,
            "payload": notification.payload,
        }
        headers = {"Idempotency-Key": notification.idempotency_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = await self.http.post(self.url, json=body, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            raise SendFailed(f"notification gateway unreachable: {exc}") from exc
        if not response.is_success:
            raise SendFailed(f"notification gateway answered {response.status_code}")


def build_sender(kind: str, *, url: str, token: str, http: httpx.AsyncClient) -> Sender | None:
    """The configured sender, or None for in-app delivery only."""
    if kind == "http":
        return HttpSender(url, token, http)
    return None
