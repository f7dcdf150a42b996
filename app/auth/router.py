"""`POST /auth/dev-token`: mint tokens in development (the route exists only when ENV=development)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.auth.dependencies import TokensDep
from app.errors import error_responses

router = APIRouter(tags=["auth"], responses=error_responses(400))


class DevTokenRequest(BaseModel):
    sub: str = Field(pattern=r"^(ops|patient:[A-Za-z0-9_-]+)$", description='"ops" or "patient:<id>"')


class TokenRead(BaseModel):
    token: str


@router.post("/auth/dev-token")
async def dev_token(body: DevTokenRequest, tokens: TokensDep) -> TokenRead:
    """A token for `sub` (development only)."""
    return TokenRead(token=tokens.issue(body.sub))
