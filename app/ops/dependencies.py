"""FastAPI dependencies of the ops routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.ops.state import OpsState
from app.ops.usage import Quota


def get_ops(request: Request) -> OpsState:
    return request.app.state.services.ops


def get_quota(request: Request) -> Quota:
    return request.app.state.services.ops.recorder.quota


OpsStateDep = Annotated[OpsState, Depends(get_ops)]
QuotaDep = Annotated[Quota, Depends(get_quota)]
