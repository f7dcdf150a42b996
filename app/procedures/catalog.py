"""The procedure catalog: `catalog.json` loaded, resolved and validated once per process.

The file holds a library of shared requirements (keyed by code) and a list of procedures that
name requirement codes, or carry a full requirement object of their own. Loading resolves the
references and validates everything with pydantic, so a typo in the data fails at first use with
a message naming the procedure and the code, never later in the middle of a pipeline.

Invariants: procedure codes are unique; requirement codes are unique within a procedure; every
referenced requirement exists; the loaded objects are frozen and shared by all callers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import BadRequest
from app.procedures.schemas import CODE_PATTERN, Procedure, Requirement

CATALOG_PATH = Path(__file__).with_name("catalog.json")


class CatalogError(ValueError):
    """The catalog file is malformed: a developer's mistake, reported with where it is."""


class UnknownProcedureError(BadRequest):
    """A procedure code that is not in the catalog (400 when it reaches HTTP)."""

    def __init__(self, code: str, valid_codes: tuple[str, ...]) -> None:
        super().__init__(f"unknown procedure {code!r}; valid procedure codes: {', '.join(valid_codes)}")
        self.code = code
        self.valid_codes = valid_codes


class _RequirementEntry(BaseModel):
    """A requirement in the file's shared library: everything but the code (its key)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    description: str
    synonyms: tuple[str, ...] = ()
    max_age_days: int | None = None


class _ProcedureEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    name: str
    specialty: str
    description: str
    aliases: tuple[str, ...] = ()
    requirements: list[str | dict[str, Any]]


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int
    requirements: dict[str, _RequirementEntry]
    procedures: list[_ProcedureEntry]


class Catalog:
    """All procedures, by code, in the file's order."""

    def __init__(self, procedures: list[Procedure], library: Sequence[Requirement] = ()) -> None:
        self._library = {r.code: r for r in library}
        self._by_code: dict[str, Procedure] = {}
        for procedure in procedures:
            if procedure.code in self._by_code:
                raise CatalogError(f"procedure code {procedure.code!r} appears twice")
            self._by_code[procedure.code] = procedure

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Catalog:
        """Resolve and validate a catalog given as parsed JSON."""
        try:
            parsed = _CatalogFile.model_validate(data)
            library = [_library_entry(code, entry) for code, entry in parsed.requirements.items()]
            return cls([_resolve(entry, parsed.requirements) for entry in parsed.procedures], library)
        except ValidationError as exc:
            raise CatalogError(f"invalid procedure catalog: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> Catalog:
        with path.open(encoding="utf-8") as handle:
            return cls.from_data(json.load(handle))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self._by_code)

    def all(self) -> list[Procedure]:
        return list(self._by_code.values())

    def requirements(self) -> list[Requirement]:
        """Every distinct requirement: the shared library (including reference entries that no
        procedure lists), then any procedure's own. The matcher's space of meanings for a fact."""
        seen = dict(self._library)
        for procedure in self._by_code.values():
            for requirement in procedure.requirements:
                seen.setdefault(requirement.code, requirement)
        return list(seen.values())

    def get(self, code: str) -> Procedure:
        """The procedure with this code, or `UnknownProcedureError` listing the valid codes."""
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownProcedureError(code, self.codes) from None


def _library_entry(code: str, entry: _RequirementEntry) -> Requirement:
    return Requirement.model_validate({"code": code, **entry.model_dump()})


def _resolve(entry: _ProcedureEntry, library: dict[str, _RequirementEntry]) -> Procedure:
    requirements: list[Requirement] = []
    for item in entry.requirements:
        if isinstance(item, str):
            if item not in library:
                raise CatalogError(f"procedure {entry.code!r} names unknown requirement {item!r}")
            requirements.append(_library_entry(item, library[item]))
        else:
            requirements.append(Requirement.model_validate(item))
    codes = [r.code for r in requirements]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise CatalogError(f"procedure {entry.code!r} lists requirements more than once: {duplicates}")
    return Procedure.model_validate({**entry.model_dump(), "requirements": requirements})


_lock = threading.Lock()
_default: Catalog | None = None


def default_catalog() -> Catalog:
    """The packaged catalog, loaded and validated on first use (thread-safe), then shared."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Catalog.from_file(CATALOG_PATH)
    return _default


def get_procedure(code: str) -> Procedure:
    """The packaged catalog's procedure with this code; `UnknownProcedureError` otherwise."""
    return default_catalog().get(code)


def list_procedures() -> list[Procedure]:
    """Every procedure in the packaged catalog, in catalog order."""
    return default_catalog().all()
