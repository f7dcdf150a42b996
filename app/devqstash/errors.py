"""Errors of the embedded QStash server; the router answers them as QStash does, `{"error": ...}`.

    QStashAPIError (CurawayError)    carries the HTTP status of its answer
    +-- BadRequest (400)             a header, body or destination the server cannot accept
    |   +-- ExpressionError          (app.devqstash.retry) a bad `Upstash-Retry-Delay`
    +-- Unauthorized (401)           missing or wrong QStash token
    +-- NotFound (404)               no such message or DLQ entry
"""

from __future__ import annotations

from app.errors import CurawayError


class QStashAPIError(CurawayError):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(QStashAPIError):
    status_code = 400


class Unauthorized(QStashAPIError):
    status_code = 401


class NotFound(QStashAPIError):
    status_code = 404
