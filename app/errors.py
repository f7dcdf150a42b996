"""Errors shared by every layer.

    CurawayError                 base of everything we raise on purpose
    +-- HTTPFacingError          carries an HTTP status; the app turns it into {"detail": ...}
    |   +-- NotFound (404), Conflict (409), BadRequest (400), Unauthorized (401), Forbidden (403)
    |       (the embedded QStash server raises these too; its routes answer {"error": ...})
    +-- TransportError           (app.runtime.transport) QStash refused or unreachable
    +-- WorkflowError            (app.runtime.errors) the runtime's own tree
"""

from __future__ import annotations


class CurawayError(Exception):
    """Base of every error this service raises on purpose."""


class HTTPFacingError(CurawayError):
    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(HTTPFacingError):
    status_code = 400


class Unauthorized(HTTPFacingError):
    status_code = 401


class Forbidden(HTTPFacingError):
    status_code = 403


class NotFound(HTTPFacingError):
    status_code = 404


class Conflict(HTTPFacingError):
    status_code = 409


# --- OpenAPI: the error body every route documents (`responses=error_responses(401, 404)`) ---------

from pydantic import BaseModel  # noqa: E402  (kept beside its only use)


class ErrorBody(BaseModel):
    """What every error answers (a 422 validation error gives a list of problems as `detail`)."""

    detail: str


ERROR_DESCRIPTIONS = {
    400: "the request is not acceptable; `detail` says why",
    401: "no valid bearer token (or QStash signature)",
    403: "the token does not reach this resource",
    404: "no such resource",
    409: "the resource is not in a state that allows this",
    413: "the request body is over the size limit",
    429: "rate limited: retry after Retry-After seconds",
    503: "not ready: a dependency does not answer",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """`responses=` for a route or router: each code with the JSON `{"detail": ...}` body."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}
