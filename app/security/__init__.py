"""The HTTP hardening around every route: body limits, rate limits, security headers, CORS, and
JSON error bodies (also for unhandled exceptions).

`install(app, settings)` registers it all; order, outermost first: security headers (every response
gets them, a 413 and a 429 too), CORS, rate limits, body-size limits, then the app.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app.config import Settings
from app.security.errors import document_error_responses, install_error_handlers
from app.security.headers import SecurityHeaders
from app.security.limits import BodySizeLimit, UploadRoute
from app.security.ratelimit import RateLimit, RateLimiter, parse_rules

UPLOAD_ROUTES = (UploadRoute("POST", "/cases/*/documents"),)
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware and error handlers to `app` (call once, after the routes are included)."""
    rules = parse_rules(settings.rate_limits)
    upload_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    # Starlette wraps in reverse order of registration: the last added is the outermost.
    app.add_middleware(
        BodySizeLimit, default_limit=settings.max_request_bytes, uploads=UPLOAD_ROUTES, upload_limit=upload_limit
    )
    app.add_middleware(RateLimit, limiter=RateLimiter(rules))
    origins = [o.strip() for o in settings.cors_allow_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials="*" not in origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    document_error_responses(app, rules)


__all__ = ["install"]
