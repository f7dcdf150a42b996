"""A client for the service's HTTP API as ops and as patients (real HTTP, real tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.config import DEV_OPS_TOKEN

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"


@dataclass
class Api:
    client: httpx.AsyncClient

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def ops(self) -> dict[str, str]:
        return self.auth(DEV_OPS_TOKEN)

    async def patient_token(self, patient_id: str) -> str:
        response = await self.client.post("/auth/dev-token", json={"sub": f"patient:{patient_id}"})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def new_case(
        self, procedure: str = "cabg", name: str = "Ada Patient"
    ) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(patient, case, patient token)."""
        patient = await self.client.post("/patients", json={"name": name, "email": "ada@example.org"}, headers=self.ops)
        assert patient.status_code == 201, patient.text
        token = await self.patient_token(patient.json()["id"])
        case = await self.client.post(
            "/cases", json={"patient_id": patient.json()["id"], "procedure": procedure}, headers=self.auth(token)
        )
        assert case.status_code == 201, case.text
        return patient.json(), case.json(), token

    async def upload(self, case_id: str, token: str, name: str, content: bytes | None = None) -> httpx.Response:
        data = content if content is not None else (FIXTURES / name).read_bytes()
        return await self.client.post(
            f"/cases/{case_id}/documents", files={"file": (name, data, "application/pdf")}, headers=self.auth(token)
        )
