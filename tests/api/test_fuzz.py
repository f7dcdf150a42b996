"""API fuzz: schemathesis generates requests from the OpenAPI schema, as ops and as a patient.

Every response must be no 5xx, carry a status code the operation documents, and match the documented
schema. The service runs for real (uvicorn on 127.0.0.1 in a thread, embedded QStash, a migrated
database). SQLite only: what is fuzzed here is the HTTP surface (parsing, auth, validation, error
bodies), which does not depend on the database; the domain tests run each route on both databases.
Rate limits are off for the run (RATE_LIMITS=""), or most upload examples would only meet the 429
(tests/security tests the limiter, and the schema documents its 429 where a rule applies).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import DEV_OPS_TOKEN
from app.serving import serve_in_loop
from tests.support.service import service_settings

# Enough examples per operation to find what 30 miss (shared/docs/library-notes.md), per token kind.
EXAMPLES = 50
# Streams that never end by themselves (SSE): a fuzzed request would wait forever.
STREAMS = r"/events$|/alerts$"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class ServerThread:
    """The app served by uvicorn in a thread with its own event loop (schemathesis calls are blocking)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.ready = threading.Event()
        self.base_url = ""
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        from app.main import create_app

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

        def build(base_url: str):  # noqa: ANN202
            settings = service_settings(self.database_url, base_url, rate_limits="", embedding_warm_up=False)
            return create_app(settings)

        async with serve_in_loop(build) as (base_url, _):
            self.base_url = base_url
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self.ready.wait(120), "the fuzz server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def fuzz_server(sqlite_templates, tmp_path_factory) -> Iterator[dict[str, str]]:  # noqa: ANN001
    url = sqlite_templates.fresh(tmp_path_factory.mktemp("fuzz"))
    with ServerThread(url) as server, httpx.Client(base_url=server.base_url) as client:
        ops = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}
        patient = client.post("/patients", json={"name": "Fuzz Patient", "email": "fuzz@example.org"}, headers=ops)
        token = client.post("/auth/dev-token", json={"sub": f"patient:{patient.json()['id']}"}).json()["token"]
        client.post("/cases", json={"patient_id": patient.json()["id"], "procedure": "cabg"}, headers=ops)
        yield {"base_url": server.base_url, "ops": DEV_OPS_TOKEN, "patient": token}


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server):  # noqa: ANN001, ANN201
    return schemathesis.openapi.from_url(f"{fuzz_server['base_url']}/openapi.json").exclude(path_regex=STREAMS)


def fuzz(schema, fuzz_server: dict[str, str], who: str) -> list[str]:  # noqa: ANN001
    """Run every operation's examples (valid and invalid data); the failures, one line each."""
    headers = {"Authorization": f"Bearer {fuzz_server[who]}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @HYPOTHESIS
        @given(case=strategy)
        def examples(case) -> None:  # noqa: ANN001
            case.call_and_validate(base_url=fuzz_server["base_url"], headers=headers, checks=CHECKS)

        try:
            examples()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup: the checks that failed
            failures.append(f"{operation.label} as {who}: {str(exc).split(' (1 sub-exception)')[0]}")
    return failures


HYPOTHESIS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


@pytest.mark.slow
def test_fuzz_as_ops_finds_no_5xx_no_undocumented_status_and_no_body_off_its_schema(fuzz_schema, fuzz_server):  # noqa: ANN001
    failures = fuzz(fuzz_schema, fuzz_server, "ops")
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_fuzz_as_a_patient_finds_no_5xx_no_undocumented_status_and_no_body_off_its_schema(fuzz_schema, fuzz_server):  # noqa: ANN001
    failures = fuzz(fuzz_schema, fuzz_server, "patient")
    assert not failures, "\n\n".join(failures)
