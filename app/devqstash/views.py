"""Rows rendered in QStash's JSON shapes (protocol doc 2.1, 2.3, 2.4, 5.3).

Timestamps are unix milliseconds. Header maps are `{name: [values]}`. A body that is valid
UTF-8 is rendered as `body`, anything else as `bodyBase64`; callback bodies are always base64.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from app.devqstash.models import QStashDlqEntry, QStashEvent, QStashMessage

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(moment: datetime) -> int:
    """Unix milliseconds, exactly (no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def header_map(headers: dict[str, str]) -> dict[str, list[str]]:
    return {name: [value] for name, value in headers.items()}


def source_header(message: QStashMessage) -> dict[str, list[str]]:
    """The headers the message is delivered with (forwarded ones and its Content-Type)."""
    headers = dict(message.forward_headers)
    if message.content_type:
        headers["Content-Type"] = message.content_type
    return header_map(headers)


def message_view(message: QStashMessage) -> dict[str, Any]:
    view: dict[str, Any] = {
        "messageId": message.id,
        "url": message.url,
        "method": message.method,
        "header": source_header(message),
        "maxRetries": message.max_retries,
        "notBefore": ms(message.not_before),
        "createdAt": ms(message.created_at),
    }
    view.update(_body_fields("body", message.body))
    optional = {
        "queueName": message.queue_name,
        "callback": message.callback,
        "callbackHeader": header_map(message.callback_headers) if message.callback_headers else None,
        "failureCallback": message.failure_callback,
        "failureCallbackHeader": (
            header_map(message.failure_callback_headers) if message.failure_callback_headers else None
        ),
        "retryDelayExpression": message.retry_delay,
        "scheduleId": message.schedule_id,
        "callerIP": message.caller_ip,
        "label": message.label,
    }
    view.update({key: value for key, value in optional.items() if value is not None})
    return view


def dlq_view(entry: QStashDlqEntry, message: QStashMessage) -> dict[str, Any]:
    view = message_view(message)
    view.update(dlqId=entry.dlq_id, responseStatus=entry.response_status, responseHeader=entry.response_headers)
    view.update(_body_fields("responseBody", entry.response_body))
    if entry.error:
        view["error"] = entry.error
    return view


def event_view(event: QStashEvent) -> dict[str, Any]:
    return {
        "time": ms(event.created_at),
        "messageId": event.message_id,
        "state": event.state,
        "url": event.url,
        **event.details,
    }


def _body_fields(name: str, data: bytes) -> dict[str, str]:
    if not data:
        return {}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}Base64": b64(data)}
