"""The ops console in a real headless browser: sign in, open a failed run, retry it, see it complete.

Debian's `/usr/bin/chromium` driven by the `playwright` package (no browser download). Skipped
when either is missing, unless `CURAWAY_REQUIRE_BROWSER=1` (CI), which makes it fail.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.config import DEV_OPS_TOKEN
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.workflows import Recorder
from tests.support.service import live_service

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-dev-shm-usage"]


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
async def test_signing_in_opening_a_failed_run_and_pressing_retry_completes_it(database_url):
    async_playwright = _browser_or_skip()
    recorder = Recorder()
    async with live_service(database_url, COORDINATION, deps=recorder) as svc:
        failed = await svc.runtime.trigger("fails-at-five", {}, labels={"case_id": "case_console"})
        assert (await svc.wait(failed)).status == "failed"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page()
                response = await page.goto(f"{svc.base_url}/ops/console")
                assert response.status == 401
                await page.fill("#token", "not-the-token")
                await page.click("button[type=submit]")
                assert "not valid" in await page.inner_text("[role=alert]")
                await page.fill("#token", DEV_OPS_TOKEN)
                await page.click("button[type=submit]")
                [cookie] = await page.context.cookies()
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != DEV_OPS_TOKEN

                await page.select_option("select[name=status]", "failed")
                await page.click("form.filters button")
                await page.click(f"a[href='/ops/console/runs/{failed}']")
                assert await page.inner_text("#run-status") == "failed"
                assert await page.locator(".tl-row").count() == 5  # steps 1-5 on the timeline
                await page.click("details.attempts summary")
                assert "attempt 1: NonRetryableError" in await page.inner_text("details.attempts")

                recorder.version = 2  # the fifth step passes from now on
                await page.click("text=Retry from the failed step")
                assert "Retrying" in await page.inner_text("[role=status]")
                for _ in range(100):
                    if await page.inner_text("#run-status") == "completed":
                        break
                    await asyncio.sleep(0.1)
                    await page.reload()
                assert await page.inner_text("#run-status") == "completed"
                assert await page.locator(".tl-row").count() == 7

                await page.click("text=Usage")
                assert await page.locator("svg rect.bar").count() >= 1
                assert await page.locator("svg line.quota").count() == 1
            finally:
                await browser.close()
