"""`GET /procedures`: the catalog of procedures and what each requires (public, no auth)."""

from __future__ import annotations

from fastapi import APIRouter

from app.procedures.catalog import list_procedures
from app.procedures.schemas import ProcedureRead

router = APIRouter(tags=["procedures"])


@router.get("/procedures", response_model=list[ProcedureRead])
async def read_procedures() -> list[ProcedureRead]:
    """Every procedure a case can be opened for, with its requirements."""
    return [ProcedureRead.of(p) for p in list_procedures()]
