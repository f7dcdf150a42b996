"""The packaged procedure catalog loads, validates, and holds what the product promises."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.procedures import (
    Catalog,
    CatalogError,
    RequirementKind,
    UnknownProcedureError,
    default_catalog,
    get_procedure,
    list_procedures,
)
from app.procedures.catalog import CATALOG_PATH


def raw_catalog() -> dict[str, Any]:
    return json.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def test_catalog_has_at_least_twelve_procedures_with_requirements() -> None:
    procedures = list_procedures()
    assert len(procedures) >= 12
    for procedure in procedures:
        assert procedure.requirements, procedure.code
        for requirement in procedure.requirements:
            assert requirement.description.strip() and requirement.synonyms, (procedure.code, requirement.code)


def test_catalog_covers_the_procedures_patients_seek_abroad() -> None:
    codes = {p.code for p in list_procedures()}
    assert {"cabg", "tka", "tha", "ivf", "dental_implants", "cataract_surgery", "sleeve_gastrectomy"} <= codes


def test_cabg_requires_angiogram_echo_ecg_hba1c_and_creatinine() -> None:
    cabg = get_procedure("cabg")
    kinds = {r.code: r.kind for r in cabg.requirements}
    assert kinds["coronary_angiogram"] is RequirementKind.STUDY
    assert kinds["echocardiogram"] is RequirementKind.STUDY
    assert kinds["ecg"] is RequirementKind.STUDY
    assert kinds["hba1c"] is RequirementKind.LAB
    assert kinds["creatinine"] is RequirementKind.LAB
    assert "EKG" in cabg.requirement("ecg").synonyms


def test_unknown_procedure_error_lists_the_valid_codes() -> None:
    with pytest.raises(UnknownProcedureError) as caught:
        get_procedure("heart-transplant")
    assert caught.value.status_code == 400
    assert "heart-transplant" in caught.value.detail
    assert "cabg" in caught.value.detail and "tka" in caught.value.detail


def test_the_catalog_is_loaded_once_and_shared() -> None:
    assert default_catalog() is default_catalog()
    assert get_procedure("cabg") is get_procedure("cabg")


def test_library_reference_entries_are_known_to_the_catalog() -> None:
    codes = {r.code for r in default_catalog().requirements()}
    assert {"knee_mri", "coronary_calcium", "chest_xray"} <= codes
    assert all("knee_mri" not in {r.code for r in p.requirements} for p in list_procedures())


def test_a_reference_to_a_missing_requirement_is_refused() -> None:
    data = raw_catalog()
    data["procedures"][0]["requirements"].append("no_such_requirement")
    with pytest.raises(CatalogError, match="no_such_requirement"):
        Catalog.from_data(data)


def test_duplicate_procedure_codes_are_refused() -> None:
    data = raw_catalog()
    data["procedures"].append(copy.deepcopy(data["procedures"][0]))
    with pytest.raises(CatalogError, match="appears twice"):
        Catalog.from_data(data)


def test_a_requirement_listed_twice_is_refused() -> None:
    data = raw_catalog()
    data["procedures"][0]["requirements"].append(data["procedures"][0]["requirements"][0])
    with pytest.raises(CatalogError, match="more than once"):
        Catalog.from_data(data)


def test_an_invalid_requirement_kind_is_refused() -> None:
    data = raw_catalog()
    data["requirements"]["ecg"]["kind"] = "scan"
    with pytest.raises(CatalogError, match="kind"):
        Catalog.from_data(data)


def test_a_procedure_may_define_a_requirement_of_its_own() -> None:
    data = raw_catalog()
    own = {"code": "passport_copy", "name": "Passport copy", "kind": "other", "description": "For the visa letter."}
    data["procedures"][0]["requirements"].append(own)
    catalog = Catalog.from_data(data)
    assert catalog.get(data["procedures"][0]["code"]).requirement("passport_copy").kind is RequirementKind.OTHER
