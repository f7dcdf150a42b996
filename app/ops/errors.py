"""Errors of the ops domain.

HTTPFacingError (app.errors)
+-- UpstreamUnavailable (502)   QStash (or another dead-letter source) refused or is unreachable
"""

from __future__ import annotations

from app.errors import HTTPFacingError


class UpstreamUnavailable(HTTPFacingError):
    status_code = 502
