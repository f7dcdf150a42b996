"""`POST /auth/dev-token`: mint tokens in development (the route exists only when ENV=development)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

router = APIRouter(tags=["auth"])


class DevTokenRequest(BaseModel):
    sub: str = Field(pattern=r"^(ops|patient:[A-Za-z0-9_-]+)$", description='"ops" or "patient:<id>"')


class TokenRead(BaseModel):
    token: str


@router.post("/auth/dev-token")
async def dev_token(body: DevTokenRequest, request: Request) -> TokenRead:
    """A token for `sub` (development only)."""
    return TokenRead(token=request.app.state.services.tokens.issue(body.sub))
