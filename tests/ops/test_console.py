"""The ops console in a real headless browser: sign in, open a failed run, retry it, see it complete.

Debian's `/usr/bin/chromium` driven by the `playwright` package (no browser download). Skipped
when either is missing, unless `CURAWAY_REQUIRE_BROWSER=1` (CI), which makes it fail.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from app.config import DEV_OPS_TOKEN
from app.serving import serve_in_loop
from tests.documents.test_pipeline_failures import _cardiology_answer
from tests.support.api import Api
from tests.support.outside import FakeEmbeddings, FakeLLM
from tests.support.pipeline import wait_document
from tests.support.service import live_service

SEVEN = ["confirm-upload", "ocr", "clinical-extract", "fhir-validate", "embedding-match", "ehr-rebuild", "sse-notify"]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def _browser_or_skip():  # noqa: ANN202
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        async_playwright = None
    missing = "playwright (pip)" if async_playwright is None else None if CHROMIUM.exists() else "chromium (apt-get)"
    if missing:
        if os.environ.get("CURAWAY_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests need {missing}")
        pytest.skip(f"browser tests need {missing}")
    return async_playwright


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_signing_in_opening_a_failed_run_and_pressing_retry_completes_it_without_repeating_ocr(database_url):
    async_playwright = _browser_or_skip()
    llm = FakeLLM(_cardiology_answer(), failures=100)
    embeddings = FakeEmbeddings()  # hashed vectors over HTTP: the local model's CPU is not what is tested here
    async with (
        serve_in_loop(lambda _: llm.app()) as (llm_url, _),
        serve_in_loop(lambda _: embeddings.app()) as (emb_url, _),
    ):
        overrides = {
            "extractor": "llm",
            "llm_base_url": f"{llm_url}/v1",
            "llm_api_key": "sk-test",
            "llm_model": "fake",
            "embedding_backend": "api",
            "embedding_api_url": f"{emb_url}/v1",
            "embedding_model": "fake",
            "embedding_warm_up": False,
            "llm_max_retries": 0,
            "workflow_default_retries": 1,
        }
        async with (
            live_service(database_url, None, **overrides) as svc,
            httpx.AsyncClient(base_url=svc.base_url) as client,
        ):
            api = Api(client)
            _, case, token = await api.new_case("cabg")
            accepted = (await api.upload(case["id"], token, "discharge_summary_cardiology.pdf")).json()
            assert (await wait_document(api, accepted["document_id"], token))["status"] == "failed"
            failed = accepted["workflow_run_id"]
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page_total = await _sign_in_and_retry(browser, svc, failed, case["id"], llm)
                finally:
                    await browser.close()
            assert (await wait_document(api, accepted["document_id"], token))["status"] == "analyzed"
            usage = (await client.get("/ops/usage", headers=api.ops)).json()
            assert page_total == usage["total_messages"] > 0  # the usage page agrees with /ops/usage


async def _sign_in_and_retry(browser, svc, failed: str, case_id: str, llm: FakeLLM) -> int:  # noqa: ANN001
    base_url = svc.base_url
    page = await browser.new_page()
    response = await page.goto(f"{base_url}/ops/console")
    assert response.status == 401
    await page.fill("#token", "not-the-token")
    await page.click("button[type=submit]")
    assert "not valid" in await page.inner_text("[role=alert]")
    await page.fill("#token", DEV_OPS_TOKEN)
    await page.click("button[type=submit]")
    [cookie] = await page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != DEV_OPS_TOKEN

    await page.fill("input[name=case_id]", case_id)
    await page.select_option("select[name=status]", "failed")
    await page.click("form.filters button")
    await page.click(f"a[href='/ops/console/runs/{failed}']")
    assert await page.inner_text("#run-status") == "failed"
    assert await page.locator(".tl-row[data-step=clinical-extract] .tl-retry").count() == 2  # both attempts marked
    await page.click("details.attempts summary")
    errors = await page.inner_text("details.attempts")
    assert "attempt 1: ExtractionError" in errors and "attempt 2: ExtractionError" in errors

    llm.failures = 0  # the LLM answers from now on
    await page.click("text=Retry from the failed step")
    assert "Retrying" in await page.inner_text("[role=status]")
    for _ in range(300):
        if await page.inner_text("#run-status") == "completed":
            break
        await asyncio.sleep(0.1)
        await page.reload()
    assert await page.inner_text("#run-status") == "completed"
    steps = await page.locator(".tl-row").evaluate_all("rows => rows.map(r => r.dataset.step)")
    assert [s for s in steps if s in SEVEN] == SEVEN
    assert await page.inner_text("tr[data-step=ocr] td.attempts") == "1"  # OCR was not repeated

    await svc.settled(failed)
    await page.click("text=Usage")
    assert await page.locator("svg rect.bar").count() >= 1
    assert await page.locator("svg line.quota").count() == 1
    return int(await page.inner_text("#total-messages"))
