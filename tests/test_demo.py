"""`curaway demo` against the real service over real HTTP (and against no service at all)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import subprocess
import sys

import httpx
from sqlalchemy import select

from app.config import DEV_OPS_TOKEN, PROJECT_ROOT
from app.demo import DemoOptions, run_demo
from app.documents.models import Document
from app.serving import bind_socket
from tests.support.api import FIXTURES
from tests.support.service import live_service

FINAL_TEXT = {"analyzed": "8/8 analyzed", "needs_ocr": "needs OCR: ", "failed": "failed: "}


def _documents(tmp_path, *names: str):
    directory = tmp_path / "documents"
    directory.mkdir()
    for name in names:
        shutil.copy(FIXTURES / name, directory / name)
    return directory


def _free_url() -> str:
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}"


async def test_demo_follows_every_document_to_its_final_state_and_prints_the_checklist(database_url, tmp_path):
    names = ("discharge_summary_cardiology.pdf", "lab_report_panel.pdf")
    directory = _documents(tmp_path, *names)
    async with live_service(database_url, None, storage_dir=tmp_path / "storage") as svc:
        out = io.StringIO()
        code = await run_demo(DemoOptions(url=svc.base_url, documents=directory, procedure="cabg", timeout_s=90), out=out, tty=False)
        text = out.getvalue()
        assert code == 0, text
        async with svc.services.sessions() as session:
            documents = {d.filename: d for d in await session.scalars(select(Document))}
        case_id = re.search(r"case (case_\w+)", text).group(1)
        async with httpx.AsyncClient(base_url=svc.base_url) as client:
            checklist = (
                await client.get(f"/cases/{case_id}/requirements", headers={"Authorization": f"Bearer {DEV_OPS_TOKEN}"})
            ).json()

    assert set(documents) == set(names)
    lines = text.splitlines()
    for name, document in documents.items():
        assert document.status in FINAL_TEXT, (name, document.status)
        own = [line for line in lines if line.startswith(name)]
        # appended lines (not a TTY): the stages one after the other, the last one final
        assert FINAL_TEXT[document.status] in own[-1], (name, own)
        assert "\x1b[" not in "".join(own)
        stages = [int(m.group(1)) for line in own if (m := re.search(r"\] (\d)/8 ", line))]
        assert stages == sorted(stages), own
        if document.status == "failed":
            assert document.failure_reason in own[-1]
    satisfied = [i for i in checklist["items"] if i["status"] == "satisfied"]
    assert f"(cabg): {len(satisfied)} of {len(checklist['items'])} satisfied" in text
    for item in checklist["items"]:
        mark = "[x]" if item["status"] == "satisfied" else "[ ]"
        assert any(line.strip().startswith(f"{mark} {item['requirement']}") for line in lines), (item, text)
    for item in satisfied:
        best = max(item["evidence"], key=lambda e: e["score"])
        row = next(line for line in lines if line.strip().startswith(f"[x] {item['requirement']}"))
        assert " ".join(best["snippet"].split())[:40] in row, (best, row)


async def test_demo_shows_a_refused_upload_with_its_reason_and_carries_on(database_url, tmp_path):
    directory = _documents(tmp_path, "encrypted_report.pdf")
    async with live_service(database_url, None, storage_dir=tmp_path / "storage") as svc:
        out = io.StringIO()
        code = await run_demo(DemoOptions(url=svc.base_url, documents=directory, timeout_s=30), out=out, tty=True)
    text = out.getvalue()
    assert code == 0, text
    refused = [line for line in text.split("\n") if "encrypted_report.pdf" in line and "refused:" in line]
    assert refused and "password" in refused[-1].lower() and "(422)" in refused[-1]
    assert "\x1b[" in text  # a terminal gets the block redrawn in place
    assert "1 document(s): 1 refused" in text and "satisfied" in text


def _dropping_analyzed_events(app):
    """The app, with every `document.analyzed` event cut out of the SSE streams it sends."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/events"):
            return await app(scope, receive, send)

        async def filtered(message):
            if message["type"] == "http.response.body" and b"event: document.analyzed" in message.get("body", b""):
                message = {**message, "body": b""}
            await send(message)

        return await app(scope, receive, filtered)

    return wrapped


async def test_demo_does_not_stall_when_a_final_event_never_arrives(database_url, tmp_path):
    directory = _documents(tmp_path, "lab_report_panel.pdf")
    async with live_service(database_url, None, storage_dir=tmp_path / "storage", wrap=_dropping_analyzed_events) as svc:
        out = io.StringIO()
        code = await run_demo(DemoOptions(url=svc.base_url, documents=directory, timeout_s=60), out=out, tty=False)
        async with svc.services.sessions() as session:
            (document,) = list(await session.scalars(select(Document)))
    text = out.getvalue()
    assert code == 0, text
    assert "document.analyzed" not in text
    last = [line for line in text.splitlines() if line.startswith("lab_report_panel.pdf")][-1]
    assert document.status == "analyzed" and "8/8 analyzed" in last, text


async def test_demo_says_clearly_when_the_service_is_unreachable(tmp_path, capsys):
    url = _free_url()
    code = await run_demo(DemoOptions(url=url, documents=_documents(tmp_path, "lab_report_panel.pdf")), out=io.StringIO())
    assert code == 1
    error = capsys.readouterr().err
    assert f"cannot reach the Curaway service at {url}" in error and "curaway serve" in error


async def test_curaway_demo_command_exits_1_with_the_message_when_nothing_listens(tmp_path):
    url = _free_url()
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "demo", "--url", url, "--documents", str(_documents(tmp_path, "lab_report_panel.pdf"))],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ENV": "development"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot reach the Curaway service at {url}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_demo_asks_for_a_token_when_the_service_is_not_in_development(database_url, tmp_path, capsys):
    secrets = {
        "env": "test",
        "ops_token": "ops-token-for-the-demo-test",
        "auth_secret": "auth-secret-for-the-demo-test-0123456789",
        "qstash_token": "qstash-token-for-the-demo-test",
        "qstash_current_signing_key": "sig_demo_test_current",
        "qstash_next_signing_key": "sig_demo_test_next",
    }
    directory = _documents(tmp_path, "encrypted_report.pdf")
    async with live_service(database_url, None, storage_dir=tmp_path / "storage", **secrets) as svc:
        code = await run_demo(DemoOptions(url=svc.base_url, documents=directory), out=io.StringIO())
        assert code == 1
        assert "not in development mode" in capsys.readouterr().err
        wrong = await run_demo(DemoOptions(url=svc.base_url, documents=directory, token="nope"), out=io.StringIO())
        assert wrong == 1 and "token was refused" in capsys.readouterr().err
        right = await run_demo(
            DemoOptions(url=svc.base_url, documents=directory, token=secrets["ops_token"]), out=io.StringIO()
        )
        assert right == 0, capsys.readouterr().err
