"""Procedures patients seek abroad and the documents and results each one requires."""

from app.procedures.catalog import (
    Catalog,
    CatalogError,
    UnknownProcedureError,
    default_catalog,
    get_procedure,
    list_procedures,
)
from app.procedures.schemas import Procedure, ProcedureRead, Requirement, RequirementKind, RequirementRead

__all__ = [
    "Catalog",
    "CatalogError",
    "Procedure",
    "ProcedureRead",
    "Requirement",
    "RequirementKind",
    "RequirementRead",
    "UnknownProcedureError",
    "default_catalog",
    "get_procedure",
    "list_procedures",
]
