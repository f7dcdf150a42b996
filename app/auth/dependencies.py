"""FastAPI dependencies for access control.

The token comes from `Authorization: Bearer`, or (for a browser `EventSource`, which cannot
send headers) from the `access_token` query parameter.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.tokens import Principal, TokenService
from app.errors import Forbidden


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token")


def get_tokens(request: Request) -> TokenService:
    return request.app.state.services.tokens


TokensDep = Annotated[TokenService, Depends(get_tokens)]


def current_principal(request: Request, tokens: TokensDep) -> Principal:
    return tokens.authenticate(_token_from(request))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_ops(principal: PrincipalDep) -> Principal:
    if not principal.is_ops:
        raise Forbidden("this needs the ops token")
    return principal


OpsDep = Annotated[Principal, Depends(require_ops)]


def ensure_patient(principal: Principal, patient_id: str) -> None:
    """Ops reach everything; a patient only their own records (403 otherwise)."""
    if not principal.is_ops and principal.patient_id != patient_id:
        raise Forbidden("this belongs to another patient")
