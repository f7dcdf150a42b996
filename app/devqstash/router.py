"""The QStash REST v2 routes of the embedded server (protocol doc section 2, minimum surface 8(i)).

Mounted by the app with `app.include_router(build_router(devq), prefix="/qstash")`; the routes reach
their `DevQStash` through the closure of `build_router`. Every route needs the QStash token
(`Authorization: Bearer <token>` or `?qstash_token=`).

Errors: the embedded server raises the service's own HTTP errors (`app.errors`: `BadRequest`,
`Unauthorized`, `NotFound`, and `retry.ExpressionError`, a `BadRequest`), so the service has
one error tree. Only the wire format differs: the app answers them as `{"detail": "..."}`,
while these routes answer every `HTTPFacingError` as QStash does, `{"error": "..."}` with its
status (`_QStashRoute`, whatever exception handlers the app installs), because the official
QStash clients read that shape.

The publish (and schedule) destination is read from the raw request path, so it reaches the
destination (and the signature's `sub`) byte for byte as the publisher wrote it; the
request's query string belongs to the destination (minus `qstash_token`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.devqstash import dlq, events
from app.devqstash.scheduler import schedule_view
from app.devqstash.spec import MessageSpec
from app.devqstash.views import dlq_view, event_view, message_view
from app.errors import BadRequest, HTTPFacingError, NotFound

if TYPE_CHECKING:
    from app.devqstash.server import DevQStash

TOKEN_PARAM = "qstash_token"


class _QStashRoute(APIRoute):
    """Answers `HTTPFacingError`s (also from dependencies) as `{"error": ...}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPFacingError as exc:
                return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

        return answer


def build_router(devq: DevQStash) -> APIRouter:
    """The routes of one `DevQStash`."""

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else request.query_params.get(TOKEN_PARAM)
        devq.authorize(token)

    router = APIRouter(
        route_class=_QStashRoute, dependencies=[Depends(authorize)], tags=["devqstash"], include_in_schema=False
    )
    _message_routes(router, devq)
    _dlq_routes(router, devq)
    _schedule_routes(router, devq)
    _other_routes(router, devq)
    return router


def _message_routes(router: APIRouter, devq: DevQStash) -> None:
    @router.post("/v2/publish/{destination:path}", status_code=201)
    async def publish(request: Request) -> JSONResponse:
        destination = destination_of(request, "/v2/publish/")
        spec = devq.parse(destination, request.headers.items(), await request.body(), caller_ip=_ip(request))
        return _published(*(await devq.publish([spec]))[0])

    @router.post("/v2/enqueue/{queue}/{destination:path}", status_code=201)
    async def enqueue(request: Request, queue: str) -> JSONResponse:
        destination = destination_of(request, "/v2/enqueue/", skip_segments=1)
        spec = devq.parse(
            destination, request.headers.items(), await request.body(), queue_name=queue, caller_ip=_ip(request)
        )
        return _published(*(await devq.publish([spec]))[0])

    @router.post("/v2/batch")
    async def batch(request: Request) -> JSONResponse:
        items = await _json(request)
        if not isinstance(items, list):
            raise BadRequest("a batch is a JSON array of {destination, headers, body, queue?}")
        specs = [_batch_spec(devq, item, index, _ip(request)) for index, item in enumerate(items)]
        results = await devq.publish(specs)
        return JSONResponse([_publish_result(*result) for result in results])

    @router.get("/v2/messages/{message_id}")
    async def get_message(message_id: str) -> JSONResponse:
        return JSONResponse(message_view(await devq.get_message(message_id)))

    @router.delete("/v2/messages/{message_id}")
    async def cancel_message(message_id: str) -> JSONResponse:
        if not await devq.cancel([message_id]):
            raise NotFound(f"message {message_id!r} not found: unknown, already delivered or cancelled")
        return JSONResponse({"cancelled": 1})

    @router.delete("/v2/messages")
    async def cancel_messages(request: Request) -> JSONResponse:
        body = await _json(request, default=None)
        if body is None:
            if set(request.query_params) - {TOKEN_PARAM}:
                raise BadRequest("cancel filters are not supported by the embedded server; send {messageIds}")
            return JSONResponse({"cancelled": await devq.cancel(None)})
        return JSONResponse({"cancelled": await devq.cancel(_strings(body, "messageIds"))})


def _dlq_routes(router: APIRouter, devq: DevQStash) -> None:
    @router.get("/v2/dlq")
    async def list_dlq(request: Request) -> JSONResponse:
        query = request.query_params
        count = _int(query, "count", default=dlq.MAX_DLQ_PAGE, low=1, high=dlq.MAX_DLQ_PAGE)
        filters = dlq.DlqFilter(
            message_id=query.get("messageId"),
            url=query.get("url"),
            response_status=_int(query, "responseStatus", default=None),
            label=query.get("label"),
            queue_name=query.get("queueName"),
            schedule_id=query.get("scheduleId"),
            from_date=_ms(query, "fromDate"),
            to_date=_ms(query, "toDate"),
        )
        rows, cursor = await devq.list_dlq(filters=filters, cursor=query.get("cursor"), count=count)
        return JSONResponse(_page("messages", [dlq_view(entry, message) for entry, message in rows], cursor))

    @router.get("/v2/dlq/{dlq_id}")
    async def get_dlq(dlq_id: str) -> JSONResponse:
        return JSONResponse(dlq_view(*(await devq.get_dlq(dlq_id))))

    @router.delete("/v2/dlq/{dlq_id}")
    async def delete_dlq(dlq_id: str) -> JSONResponse:
        if not await devq.delete_dlq([dlq_id]):
            raise NotFound(f"DLQ entry {dlq_id!r} not found")
        return JSONResponse({"deleted": 1})

    @router.delete("/v2/dlq")
    async def delete_dlq_many(request: Request) -> JSONResponse:
        ids = _strings(await _json(request), "dlqIds")
        return JSONResponse({"deleted": await devq.delete_dlq(ids)})

    @router.post("/v2/dlq/retry/{dlq_id}", status_code=201)
    async def retry_dlq(request: Request, dlq_id: str) -> JSONResponse:
        message_id = await devq.retry_dlq(dlq_id, request.headers.items(), caller_ip=_ip(request))
        return JSONResponse({"messageId": message_id}, status_code=201)


def _schedule_routes(router: APIRouter, devq: DevQStash) -> None:
    @router.post("/v2/schedules/{destination:path}")
    async def create_schedule(request: Request) -> JSONResponse:
        destination = destination_of(request, "/v2/schedules/")
        schedule_id = await devq.create_schedule(
            destination, request.headers.items(), await request.body(), caller_ip=_ip(request)
        )
        return JSONResponse({"scheduleId": schedule_id})

    @router.get("/v2/schedules")
    async def list_schedules() -> JSONResponse:
        return JSONResponse([schedule_view(schedule) for schedule in await devq.list_schedules()])

    @router.get("/v2/schedules/{schedule_id}")
    async def get_schedule(schedule_id: str) -> JSONResponse:
        return JSONResponse(schedule_view(await devq.get_schedule(schedule_id)))

    @router.delete("/v2/schedules/{schedule_id}")
    async def delete_schedule(schedule_id: str) -> Response:
        await devq.delete_schedule(schedule_id)
        return Response(status_code=200)

    @router.patch("/v2/schedules/{schedule_id}/pause")
    async def pause_schedule(schedule_id: str) -> Response:
        await devq.pause_schedule(schedule_id, paused=True)
        return Response(status_code=200)

    @router.patch("/v2/schedules/{schedule_id}/resume")
    async def resume_schedule(schedule_id: str) -> Response:
        await devq.pause_schedule(schedule_id, paused=False)
        return Response(status_code=200)


def _other_routes(router: APIRouter, devq: DevQStash) -> None:
    @router.get("/v2/keys")
    async def keys() -> JSONResponse:
        current, next_key = devq.signing_keys
        return JSONResponse({"current": current, "next": next_key})

    @router.post("/v2/keys/rotate")
    async def rotate_keys() -> JSONResponse:
        raise BadRequest(
            "key rotation is not supported by the embedded server; set QSTASH_CURRENT_SIGNING_KEY and "
            "QSTASH_NEXT_SIGNING_KEY and restart"
        )

    @router.get("/v2/events")
    async def list_events(request: Request) -> JSONResponse:
        query = request.query_params
        count = _int(query, "count", default=100, low=1, high=events.MAX_EVENTS_PAGE)
        cursor = _int(query, "cursor", default=None)
        filters = events.EventFilter(
            message_id=query.get("messageId"),
            state=query.get("state"),
            url=query.get("url"),
            from_date=_ms(query, "fromDate"),
            to_date=_ms(query, "toDate"),
        )
        rows, next_cursor = await devq.list_events(filters=filters, cursor=cursor, count=count)
        return JSONResponse(_page("events", [event_view(row) for row in rows], next_cursor))


def destination_of(request: Request, marker: str, *, skip_segments: int = 0) -> str:
    """The destination URL after `marker` (and `skip_segments` more segments) in the raw path,
    plus the query string."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1")
    start = path.find(marker)
    if start < 0:
        destination = request.path_params.get("destination", "")
    else:
        destination = path[start + len(marker) :].split("/", skip_segments)[-1]
    if destination[:7].lower() in ("http%3a", "https%3"):
        destination = unquote(destination)
    for scheme in ("http:/", "https:/"):  # a proxy may have merged the double slash
        if destination.startswith(scheme) and not destination.startswith(scheme + "/"):
            destination = scheme + "/" + destination[len(scheme) :]
    query = "&".join(
        part
        for part in request.scope.get("query_string", b"").decode("latin-1").split("&")
        if part and part.split("=", 1)[0] != TOKEN_PARAM
    )
    return f"{destination}?{query}" if query else destination


def _batch_spec(devq: DevQStash, item: Any, index: int, caller_ip: str | None) -> MessageSpec:
    if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
        raise BadRequest(f"batch item {index}: an object with a string `destination` is required")
    headers, body, queue = item.get("headers") or {}, item.get("body"), item.get("queue")
    if not isinstance(headers, dict) or not all(isinstance(v, str | int | float | bool) for v in headers.values()):
        raise BadRequest(f"batch item {index}: `headers` must map header names to strings")
    if body is not None and not isinstance(body, str):
        raise BadRequest(f"batch item {index}: `body` must be a string or null")
    if queue is not None and not isinstance(queue, str):
        raise BadRequest(f"batch item {index}: `queue` must be a string or null")
    pairs = [(str(name), str(value)) for name, value in headers.items()]
    try:
        return devq.parse(item["destination"], pairs, (body or "").encode(), queue_name=queue, caller_ip=caller_ip)
    except BadRequest as exc:
        raise BadRequest(f"batch item {index}: {exc.detail}") from exc


def _publish_result(message_id: str, deduplicated: bool) -> dict[str, Any]:
    return {"messageId": message_id, "deduplicated": True} if deduplicated else {"messageId": message_id}


def _published(message_id: str, deduplicated: bool) -> JSONResponse:
    """201 with the new message's ID; 202 with the existing one's for a duplicate."""
    return JSONResponse(_publish_result(message_id, deduplicated), status_code=202 if deduplicated else 201)


def _page(key: str, items: list[dict[str, Any]], cursor: Any) -> dict[str, Any]:
    page: dict[str, Any] = {key: items}
    if cursor is not None:
        page["cursor"] = str(cursor)
    return page


async def _json(request: Request, default: Any = ...) -> Any:
    raw = await request.body()
    if not raw.strip():
        if default is ...:
            raise BadRequest("a JSON body is required")
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


def _strings(body: Any, key: str) -> list[str]:
    values = body.get(key) if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise BadRequest(f"the body must be {{{key!r}: [string, ...]}}")
    return values


def _int(query: Any, name: str, *, default: int | None, low: int | None = None, high: int | None = None) -> Any:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequest(f"query parameter {name}={value!r} must be an integer") from exc
    if (low is not None and number < low) or (high is not None and number > high):
        raise BadRequest(f"query parameter {name}={number} must be between {low} and {high}")
    return number


def _ms(query: Any, name: str) -> datetime | None:
    value = _int(query, name, default=None)
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None
