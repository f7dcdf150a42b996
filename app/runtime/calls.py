"""`ctx.call` on the wire: the body QStash forwards, and the outcome its callback carries."""

from __future__ import annotations

import base64
import json
from typing import Any


def call_body(body: Any) -> str | None:
    """A `ctx.call` body as QStash forwards it: text as is, bytes decoded, anything else as JSON."""
    if body is None or isinstance(body, str):
        return body
    if isinstance(body, bytes):
        return body.decode()
    return json.dumps(body)


def call_outcome(data: dict[str, Any], status: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(result, error) of a call callback; (None, None) for an attempt QStash will retry."""
    has_response = isinstance(status, int) and status >= 100
    retrying = int(data.get("retried", 0)) < int(data.get("maxRetries", 0))
    if "dlqId" not in data and has_response and not 200 <= status < 300 and retrying:
        return None, None
    if not has_response:
        attempts = int(data.get("maxRetries", 0)) + 1
        return None, f"{data.get('url', 'the call')} gave no HTTP answer after {attempts} attempt(s)"
    raw = base64.b64decode(data.get("body") or "")
    headers = {
        k.lower(): ", ".join(v) if isinstance(v, list) else str(v) for k, v in (data.get("header") or {}).items()
    }
    return {"status": status, "headers": headers, "body": raw.decode("utf-8", errors="replace")}, None
