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
