"""The ops web console at `/ops/console`: server-rendered (Jinja2), no JavaScript, no CDN.

Signing in posts the ops token once; the console answers with a session cookie (kept 12 h)
holding an ops JWT signed with `AUTH_SECRET` (`HttpOnly`, `SameSite=Strict`, `Path=/ops`, `Secure` over HTTPS), never
the token itself. Every page needs that cookie (or an ops bearer token): none is 401 (with the
sign-in form), a patient's is 403, like every `/ops` route. Actions are POST forms carrying a
CSRF token derived from the session (HMAC with `AUTH_SECRET`); with the strict same-site
cookie, another site can neither send the cookie nor know the token.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.auth.tokens import Principal
from app.db import utcnow
from app.errors import HTTPFacingError, Unauthorized
from app.ops import service
from app.ops.chart import usage_chart
from app.ops.schemas import RunDetail
from app.runtime.models import RunStatus

router = APIRouter(prefix="/ops/console", tags=["ops"], include_in_schema=False)

COOKIE = "curaway_ops"
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())


def _render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("flash", None)
    context.setdefault("signed_in", "csrf" in context)
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status_code)


def _csrf(request: Request, session: str) -> str:
    secret = request.app.state.services.settings.auth_secret.get_secret_value().encode()
    return hmac.new(secret, f"console-csrf:{session}".encode(), hashlib.sha256).hexdigest()[:32]


def _session_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE)


def _authorise(request: Request) -> tuple[str, Principal] | HTMLResponse:
    """The session and its ops principal, or the page to answer instead (401 sign-in, 403)."""
    token = _session_token(request)
    if not token:
        return _render("login.html", 401, title="Sign in")
    try:
        principal = request.app.state.services.tokens.authenticate(token)
    except Unauthorized as exc:
        return _render("login.html", 401, title="Sign in", message=f"{exc.detail}; sign in again")
    if not principal.is_ops:
        return _render("login.html", 403, title="Forbidden", message="this console needs the ops token")
    return token, principal


def _checked(request: Request, csrf: str) -> tuple[str, Principal] | HTMLResponse:
    """`_authorise` for an action, plus its CSRF token (403 when it does not match)."""
    auth = _authorise(request)
    if isinstance(auth, HTMLResponse):
        return auth
    if not hmac.compare_digest(csrf, _csrf(request, auth[0])):
        return _render("login.html", 403, title="Forbidden", message="the form expired or came from elsewhere; reload")
    return auth


def _back(url: str, flash: str, *, bad: bool = False) -> RedirectResponse:
    query = urlencode({"flash": flash, **({"bad": "1"} if bad else {})})
    return RedirectResponse(f"{url}?{query}", status_code=303)


def _page(request: Request, auth: tuple[str, Principal], name: str, **context: Any) -> HTMLResponse:
    flash = request.query_params.get("flash")
    bad = bool(request.query_params.get("bad"))
    return _render(name, csrf=_csrf(request, auth[0]), flash=flash, flash_bad=bad, **context)


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form()] = "") -> Response:
    """Exchange the ops token for a session cookie."""
    tokens = request.app.state.services.tokens
    try:
        principal = tokens.authenticate(token or _session_token(request))
    except Unauthorized as exc:
        return _render("login.html", 401, title="Sign in", message=exc.detail)
    if not principal.is_ops:
        return _render("login.html", 403, title="Forbidden", message="this console needs the ops token")
    response = RedirectResponse("/ops/console", status_code=303)
    response.set_cookie(
        COOKIE,
        tokens.issue("ops"),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ops",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    auth = _checked(request, csrf)
    if isinstance(auth, HTMLResponse):
        return auth
    response = RedirectResponse("/ops/console", status_code=303)
    response.delete_cookie(COOKIE, path="/ops")
    return response


@router.get("")
async def runs_page(request: Request) -> Response:
    """Runs, newest first, with the API's filters."""
    auth = _authorise(request)
    if isinstance(auth, HTMLResponse):
        return auth
    q = request.query_params
    filters = {k: q.get(k) or None for k in ("workflow", "status", "case_id", "document_id", "from", "to")}
    try:
        created_from = datetime.fromisoformat(filters["from"]) if filters["from"] else None
        created_to = datetime.fromisoformat(filters["to"]) if filters["to"] else None
    except ValueError:
        return _back("/ops/console", "dates must look like 2026-12-03T10:00", bad=True)
    async with request.app.state.services.sessions() as session:
        page = await service.list_runs(
            session,
            workflow=filters["workflow"],
            status=filters["status"],
            case_id=filters["case_id"],
            document_id=filters["document_id"],
            created_from=created_from,
            created_to=created_to,
            cursor=q.get("cursor") or None,
            limit=50,
        )
    kept = {k: v for k, v in filters.items() if v}
    next_url = "/ops/console?" + urlencode({**kept, "cursor": page.next_cursor or ""})
    statuses = [s.value for s in RunStatus]
    return _page(
        request, auth, "runs.html", title="Runs", page=page, filters=filters, statuses=statuses, next_url=next_url
    )


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    """One run: its step timeline, attempts and errors, children, events; retry and cancel."""
    auth = _authorise(request)
    if isinstance(auth, HTMLResponse):
        return auth
    async with request.app.state.services.sessions() as session:
        try:
            run = await service.run_detail(session, run_id=run_id)
        except HTTPFacingError as exc:
            return _back("/ops/console", exc.detail, bad=True)
    bars, span_s = timeline(run)
    return _page(request, auth, "run.html", title=run.id, run=run, bars=bars, span_s=span_s)


@router.post("/runs/{run_id}/{action}")
async def run_action(request: Request, run_id: str, action: str, csrf: Annotated[str, Form()] = "") -> Response:
    """Retry (resume a failed run) or cancel, then back to the run page."""
    auth = _checked(request, csrf)
    if isinstance(auth, HTMLResponse):
        return auth
    runtime = request.app.state.services.runtime
    url = f"/ops/console/runs/{run_id}"
    try:
        if action == "retry":
            await runtime.resume(run_id)
            return _back(url, "Retrying from the step that failed.")
        if action == "cancel":
            cancelled = await runtime.cancel(run_id)
            return _back(url, f"Cancelled {len(cancelled)} run(s)." if cancelled else "The run had already finished.")
    except HTTPFacingError as exc:
        return _back(url, exc.detail, bad=True)
    return _back(url, f"unknown action {action!r}", bad=True)


@router.get("/dlq")
async def dlq_page(request: Request) -> Response:
    auth = _authorise(request)
    if isinstance(auth, HTMLResponse):
        return auth
    try:
        page = await request.app.state.services.ops.dead_letters.list(count=100)
    except HTTPFacingError as exc:
        return _page(request, auth, "dlq.html", title="Dead letters", items=[], flash=exc.detail, flash_bad=True)
    return _page(request, auth, "dlq.html", title="Dead letters", items=page.items)


@router.post("/dlq/{dead_letter_id}/replay")
async def dlq_replay(request: Request, dead_letter_id: str, csrf: Annotated[str, Form()] = "") -> Response:
    auth = _checked(request, csrf)
    if isinstance(auth, HTMLResponse):
        return auth
    try:
        message_id = await request.app.state.services.ops.dead_letters.replay(dead_letter_id)
    except HTTPFacingError as exc:
        return _back("/ops/console/dlq", exc.detail, bad=True)
    return _back("/ops/console/dlq", f"Replayed {dead_letter_id} as message {message_id}.")


@router.get("/usage")
async def usage_page(request: Request) -> Response:
    auth = _authorise(request)
    if isinstance(auth, HTMLResponse):
        return auth
    ops = request.app.state.services.ops
    await ops.recorder.flush()
    async with request.app.state.services.sessions() as session:
        usage = await service.usage_report(session, quota=ops.recorder.quota, today=utcnow(), days=14)
    return _page(request, auth, "usage.html", title="Usage", usage=usage, chart=usage_chart(usage))


def timeline(run: RunDetail) -> tuple[list[dict[str, Any]], float]:
    """One bar per step on the run's time axis (percent of the span), failed attempts marked."""
    start = run.created_at
    ends = [run.finished_at or utcnow()] + [s.finished_at for s in run.steps if s.finished_at]
    span = max((max(ends) - start).total_seconds(), 0.001)
    now = utcnow()

    def pct(at: datetime) -> float:
        return round(min(100.0, max(0.0, (at - start).total_seconds() / span * 100)), 3)

    bars = []
    for step in run.steps:
        end = step.finished_at or (now if step.status not in ("completed", "failed") else step.started_at)
        left = pct(step.started_at)
        marks = [pct(a.at) for a in step.attempt_history if a.outcome == "failed" and a.at]
        bars.append({"step": step, "left": left, "width": max(0.4, pct(end) - left), "retries": marks})
    return bars, span
