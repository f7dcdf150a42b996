"""A publish request's `Upstash-*` headers turned into a `MessageSpec` (protocol doc section 3).

Rules:
- Header names are case-insensitive and stored in canonical form (`X-Trace-Id`); values are strings.
- `Upstash-Forward-X` is delivered as `X`. `Content-Type` is kept and delivered.
- `Upstash-Callback` / `Upstash-Failure-Callback` are the callback URLs; every
  `Upstash-Callback-X` / `Upstash-Failure-Callback-X` configures that callback message as if
  it were `Upstash-X` (so `Upstash-Callback-Forward-Foo` becomes header `Foo` on the callback).
- The known control headers configure the message; any other `Upstash-*` header is kept
  (`control_headers`) but never forwarded. Other request headers are dropped.
- `Upstash-Not-Before` (unix seconds) wins over `Upstash-Delay`.
- Content-based deduplication keys on destination, body, Content-Type and forwarded headers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from app.devqstash.retry import parse_expression
from app.errors import BadRequest

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
MAX_RETRIES = 100
DEDUP_WINDOW = timedelta(minutes=10)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FORWARD = "upstash-forward-"
_CALLBACK = "upstash-callback"
_FAILURE_CALLBACK = "upstash-failure-callback"


@dataclass(slots=True)
class MessageSpec:
    """Everything needed to store and deliver one message."""

    url: str
    body: bytes
    method: str = "POST"
    content_type: str | None = None
    forward_headers: dict[str, str] = field(default_factory=dict)
    control_headers: dict[str, str] = field(default_factory=dict)
    callback: str | None = None
    callback_headers: dict[str, str] = field(default_factory=dict)
    failure_callback: str | None = None
    failure_callback_headers: dict[str, str] = field(default_factory=dict)
    max_retries: int = 3
    retry_delay: str | None = None
    timeout_s: float | None = None
    not_before: datetime | None = None  # None: deliver now
    received_at: datetime | None = None  # when the publish arrived; delays count from it
    label: str | None = None
    schedule_id: str | None = None
    queue_name: str | None = None
    caller_ip: str | None = None
    dedup_key: str | None = None


def parse_duration_s(value: str, *, header: str) -> float:
    """`10s`, `2m`, `1h`, `1d`, `500ms`, compounds like `1h30m`, or a bare number of seconds."""
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if text and re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(text))
    raise BadRequest(f"{header} {value!r} is not a duration; use e.g. 10s, 2m, 1h, 1d or 500ms")


def check_destination(url: str) -> str:
    """The destination if it is a full http(s) URL; URL groups and API names are refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(
            f"destination {url!r} is not a full http(s) URL; the embedded QStash server does not "
            "support URL groups (topics) or API destinations"
        )
    return url


def parse_spec(
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    default_retries: int,
    now: datetime,
    queue_name: str | None = None,
    caller_ip: str | None = None,
) -> MessageSpec:
    """Build the spec of a message published to `url` with these request headers."""
    spec = MessageSpec(url=check_destination(url), body=body, max_retries=default_retries, received_at=now)
    spec.queue_name, spec.caller_ip = queue_name, caller_ip
    control: dict[str, str] = {}
    for name, value in headers:
        _sort_header(spec, control, name, str(value))
    _apply_control(spec, control, now=now)
    return spec


def _sort_header(spec: MessageSpec, control: dict[str, str], name: str, value: str) -> None:
    lower = name.lower()
    if lower == "content-type":
        spec.content_type = value
    elif lower.startswith(_FORWARD):
        spec.forward_headers[canonical(name[len(_FORWARD) :])] = value
    elif lower == _CALLBACK:
        spec.callback = value
    elif lower.startswith(_CALLBACK + "-"):
        spec.callback_headers[canonical("Upstash-" + name[len(_CALLBACK) + 1 :])] = value
    elif lower == _FAILURE_CALLBACK:
        spec.failure_callback = value
    elif lower.startswith(_FAILURE_CALLBACK + "-"):
        spec.failure_callback_headers[canonical("Upstash-" + name[len(_FAILURE_CALLBACK) + 1 :])] = value
    elif lower.startswith("upstash-"):
        control[lower] = value


def _apply_control(spec: MessageSpec, control: dict[str, str], *, now: datetime) -> None:
    spec.method = _method(control.pop("upstash-method", "POST"))
    spec.max_retries = _retries(control.pop("upstash-retries", None), spec.max_retries)
    spec.retry_delay = control.pop("upstash-retry-delay", None)
    if spec.retry_delay is not None:
        parse_expression(spec.retry_delay)
    timeout = control.pop("upstash-timeout", None)
    spec.timeout_s = None if timeout is None else parse_duration_s(timeout, header="Upstash-Timeout")
    spec.not_before = _due(control.pop("upstash-not-before", None), control.pop("upstash-delay", None), now)
    spec.label = control.pop("upstash-label", None)
    spec.schedule_id = control.pop("upstash-schedule-id", None)
    spec.queue_name = control.pop("upstash-queue-name", None) or spec.queue_name
    dedup_id = control.pop("upstash-deduplication-id", None)
    content_based = control.pop("upstash-content-based-deduplication", "").strip().lower() == "true"
    spec.dedup_key = _dedup_key(spec, dedup_id, content_based)
    for url, config in ((spec.callback, spec.callback_headers), (spec.failure_callback, spec.failure_callback_headers)):
        if url is not None:  # fail at publish, not when the callback is due
            parse_spec(url, config.items(), b"", default_retries=spec.max_retries, now=now)
    spec.control_headers = {canonical(name): value for name, value in control.items()}


def _method(value: str) -> str:
    method = value.strip().upper()
    if method not in METHODS:
        raise BadRequest(f"Upstash-Method {value!r} is not one of {', '.join(sorted(METHODS))}")
    return method


def _retries(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.strip().isdigit() or int(value) > MAX_RETRIES:
        raise BadRequest(f"Upstash-Retries {value!r} must be an integer from 0 to {MAX_RETRIES}")
    return int(value)


def _due(not_before: str | None, delay: str | None, now: datetime) -> datetime | None:
    if not_before is not None:
        try:
            return datetime.fromtimestamp(float(not_before), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise BadRequest(f"Upstash-Not-Before {not_before!r} must be unix seconds") from exc
    if delay is not None:
        return now + timedelta(seconds=parse_duration_s(delay, header="Upstash-Delay"))
    return None


def _dedup_key(spec: MessageSpec, dedup_id: str | None, content_based: bool) -> str | None:
    if dedup_id:
        return "id:" + hashlib.sha256(dedup_id.encode()).hexdigest()
    if not content_based:
        return None
    digest = hashlib.sha256()
    forwarded = sorted((k.lower(), v) for k, v in spec.forward_headers.items())
    for part in (spec.url, spec.content_type or "", repr(forwarded)):
        digest.update(part.encode() + b"\x00")
    digest.update(spec.body)
    return "content:" + digest.hexdigest()


def canonical(name: str) -> str:
    """`x-trace-id` -> `X-Trace-Id`, the canonical form QStash (written in Go) uses."""
    return "-".join(part.capitalize() for part in name.split("-"))


class MessageSpecLike(Protocol):
    """What `spec_headers` reads: a `MessageSpec` or a stored message."""

    method: str
    content_type: str | None
    forward_headers: dict[str, str]
    control_headers: dict[str, str]
    max_retries: int
    retry_delay: str | None
    timeout_s: float | None
    label: str | None
    schedule_id: str | None
    callback: str | None
    failure_callback: str | None
    callback_headers: dict[str, str]
    failure_callback_headers: dict[str, str]


def spec_headers(spec_like: MessageSpecLike) -> list[tuple[str, str]]:
    """The publish headers that would recreate a stored message's configuration."""
    headers: list[tuple[str, str]] = [("Upstash-Method", spec_like.method)]
    if spec_like.content_type:
        headers.append(("Content-Type", spec_like.content_type))
    headers += [(f"Upstash-Forward-{k}", v) for k, v in spec_like.forward_headers.items()]
    headers += list(spec_like.control_headers.items())
    headers.append(("Upstash-Retries", str(spec_like.max_retries)))
    optional = {
        "Upstash-Retry-Delay": spec_like.retry_delay,
        "Upstash-Timeout": None if spec_like.timeout_s is None else f"{round(spec_like.timeout_s * 1000)}ms",
        "Upstash-Label": spec_like.label,
        "Upstash-Schedule-Id": spec_like.schedule_id,
        "Upstash-Callback": spec_like.callback,
        "Upstash-Failure-Callback": spec_like.failure_callback,
    }
    headers += [(k, v) for k, v in optional.items() if v is not None]
    headers += [("Upstash-Callback-" + k[8:], v) for k, v in spec_like.callback_headers.items()]
    headers += [("Upstash-Failure-Callback-" + k[8:], v) for k, v in spec_like.failure_callback_headers.items()]
    return headers
