"""`GET /procedures` through a FastAPI app, over httpx's in-process ASGI transport."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.procedures import list_procedures
from app.procedures.router import router


async def get_procedures() -> httpx.Response:
    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get("/procedures")


async def test_get_procedures_lists_code_name_and_requirements_without_auth() -> None:
    response = await get_procedures()
    assert response.status_code == 200
    body = response.json()
    assert [p["code"] for p in body] == [p.code for p in list_procedures()]
    for procedure in body:
        assert procedure["name"] and procedure["requirements"]
        for requirement in procedure["requirements"]:
            assert {"code", "name", "kind", "description"} <= requirement.keys()
            assert requirement["kind"] in {"study", "lab", "letter", "other"}


async def test_get_procedures_shows_cabg_requirements_but_not_matcher_synonyms() -> None:
    body = (await get_procedures()).json()
    cabg = next(p for p in body if p["code"] == "cabg")
    codes = [r["code"] for r in cabg["requirements"]]
    assert {"coronary_angiogram", "echocardiogram", "ecg", "hba1c", "creatinine"} <= set(codes)
    assert all("synonyms" not in r for r in cabg["requirements"])
