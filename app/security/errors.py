"""Every error answered as JSON `{"detail": ...}`, never a stack trace, and documented in OpenAPI.

HTTPFacingError, HTTPException (404, 405, 413) and validation errors (422) already answer JSON;
this adds the last resort: an unhandled exception is logged with its traceback and answered
`500 {"detail": "internal server error"}`. It also documents, on every operation, the answers the
middleware may give before a route runs: 400 and 413 where a body is accepted, 429 where a rate limit applies.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from app.errors import ErrorBody
from app.security.ratelimit import Rule

log = logging.getLogger(__name__)
ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorBody"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)


def document_error_responses(app: FastAPI, rules: tuple[Rule, ...]) -> None:
    """Add 413 and 429 to the operations that can answer them, in the generated OpenAPI schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault("400", _documented("the body cannot be parsed (not JSON, broken multipart)"))
                    responses.setdefault("413", _documented("the request body is over the size limit"))
                if any(rule.route.matches(method.upper(), _example_path(path)) for rule in rules):
                    responses.setdefault("429", _documented("rate limited: retry after Retry-After seconds"))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA_REF}}}


def _example_path(path: str) -> str:
    """`/cases/{case_id}/documents` -> `/cases/x/documents` (a path the patterns can match)."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))
