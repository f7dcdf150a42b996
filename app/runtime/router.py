"""HTTP entry points of the runtime: `POST /workflows/<name>` and its call-result callback.

Every request must carry a valid `Upstash-Signature` for the exact public URL it was sent
to (`PUBLIC_BASE_URL` + path + query); otherwise it is answered 401 and nothing changes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.errors import Unauthorized, error_responses
from app.runtime.answers import Answer, Outcome
from app.runtime.runtime import Runtime
from app.runtime.signing import SignatureError

DELIVERY_ANSWERS: dict[int | str, dict[str, object]] = {
    429: {"description": "the run is busy with another delivery: QStash retries after Retry-After"},
    503: {"description": "the database or QStash failed: QStash delivers again"},
}
router = APIRouter(tags=["workflows"], responses={**error_responses(400, 401, 404), **DELIVERY_ANSWERS})


async def verified_body(request: Request) -> bytes:
    """The request's body, once its `Upstash-Signature` is checked (401 `Unauthorized` otherwise)."""
    runtime: Runtime = request.app.state.runtime
    body = await request.body()
    url = runtime.base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    try:
        runtime.verify(request.headers.get("upstash-signature"), body, url)
    except SignatureError as exc:
        raise Unauthorized(f"QStash signature rejected: {exc}") from exc
    return body


def _respond(answer: Answer) -> JSONResponse:
    """2xx when done or nothing to do; BUSY 429 and RETRY 503, each with `Retry-After`.

    QStash honours `Retry-After` on a 429 (the workflow SDKs rely on it); a 503 takes the
    message's retry delay.
    """
    headers = {} if answer.retry_after_s is None else {"Retry-After": str(answer.retry_after_s)}
    status = {Outcome.BUSY: 429, Outcome.RETRY: 503}.get(answer.outcome, 200)
    return JSONResponse({"status": answer.outcome}, status_code=status, headers=headers)


@router.post("/workflows/{name}")
async def deliver(name: str, request: Request) -> JSONResponse:
    """A QStash delivery that continues a run of workflow `name`."""
    body = await verified_body(request)
    return _respond(await request.app.state.runtime.handle_delivery(name, body))


@router.post("/workflows/{name}/call-result")
async def call_result(name: str, run_id: str, position: int, request: Request) -> JSONResponse:
    """QStash's callback with the answer to a `ctx.call` step."""
    body = await verified_body(request)
    runtime: Runtime = request.app.state.runtime
    runtime.registry.get(name)
    return _respond(await runtime.handle_call_result(name, run_id, position, body))
