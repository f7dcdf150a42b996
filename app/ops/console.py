"""The ops web console at `/ops/console` (server-rendered)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/ops/console", tags=["ops"], include_in_schema=False)
