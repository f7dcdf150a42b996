"""The Docker image's steps, repeated without Docker: a non-editable install that migrates and serves.

No Docker engine runs here, so this reads the Dockerfile and does what it says in a fresh virtual
environment: copies exactly the files its COPY lines name, installs that copy non-editably, applies
the final stage's ENV lines, and runs its CMD from another directory against an empty Postgres
database, until the service answers and then stops on SIGTERM (the CMD `exec`s the server).
The pinned dependencies are not installed again (the build backend is the dev extra's setuptools):
site-packages through a path file (not as a site directory, so the editable install stays out).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.config import PROJECT_ROOT
from tests.support.databases import PostgresTemplates, with_database
from tests.support.processes import free_port

READY_PATH = "/readyz"  # 200 only when the database and the QStash endpoint answer
SECRETS = {
    "OPS_TOKEN": "ops-token-for-the-image-test-0123456789",
    "AUTH_SECRET": "auth-secret-for-the-image-test-0123456789",
    "QSTASH_TOKEN": "qstash-token-for-the-image-test",
    "QSTASH_CURRENT_SIGNING_KEY": "sig_image_test_current_0123456789",
    "QSTASH_NEXT_SIGNING_KEY": "sig_image_test_next_01234567890123",
}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    return instructions[starts[-1] :]


def copied_files(instructions: list[tuple[str, str]]) -> list[str]:
    """Every source of a COPY that takes files from the build context (not `--from=`)."""
    sources = []
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            sources.extend(shlex.split(args)[:-1])
    return sources


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in stage:
        if op == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value.replace("$PATH", os.environ["PATH"])
    return env


@pytest.fixture
def empty_postgres(postgres_templates: PostgresTemplates | None):  # noqa: ANN201
    if postgres_templates is None:
        pytest.skip("no Postgres available (set TEST_DATABASE_URL)")
    name = f"curaway_image_{uuid.uuid4().hex[:8]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(postgres_templates.admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    yield with_database(postgres_templates.admin_url, name)
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def install_like_the_image(root: Path) -> tuple[Path, Path]:
    """Copy what the Dockerfile copies into root/context, install it non-editably into root/venv."""
    instructions = dockerfile_instructions()
    context = root / "context"
    for source in copied_files(instructions):
        target = context / source
        if (PROJECT_ROOT / source).is_dir():
            shutil.copytree(PROJECT_ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / source, target)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_deps_of_the_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", str(context)], check=True, cwd=root)
    assert not (Path(purelib) / "__editable__.curaway-0.1.0.pth").exists()
    return venv, Path(purelib)


@pytest.mark.slow
async def test_the_image_steps_install_migrate_and_serve_from_a_non_editable_install(empty_postgres, tmp_path):
    venv, purelib = await asyncio.to_thread(install_like_the_image, tmp_path)
    stage = final_stage(dockerfile_instructions())
    command = json.loads(next(args for op, args in stage if op == "CMD"))
    workdir = tmp_path / "srv"  # WORKDIR: the copied migrations, as the image has them
    shutil.copytree(tmp_path / "context", workdir, ignore=shutil.ignore_patterns("app", "*.toml", "*.txt", "*.md"))
    port = free_port()
    env = {
        **image_env(stage),
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "MIGRATIONS_DIR": str(workdir / "migrations"),
        # ENV=test: production code paths (no dev token, dev secrets refused) on local stand-ins.
        "ENV": "test",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": empty_postgres,
        "TESSDATA_PREFIX": "",
        "EMBEDDING_WARM_UP": "false",
        **SECRETS,
    }
    log = tmp_path / "server.log"
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        await wait_until_ready(f"http://127.0.0.1:{port}{READY_PATH}", process, log)
        async with httpx.AsyncClient() as client:
            assert (
                await client.post(f"http://127.0.0.1:{port}/auth/dev-token", json={"sub": "ops"})
            ).status_code == 404
        connection = await asyncpg.connect(empty_postgres)
        try:
            assert await connection.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await connection.close()
        process.send_signal(signal.SIGTERM)  # reaches uvicorn itself: the CMD exec'd it
        # uvicorn shuts down gracefully, then re-raises the signal: killed by SIGTERM, as Docker expects.
        assert await asyncio.to_thread(process.wait, 30) in (0, -signal.SIGTERM), log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "migrated postgresql" in output and "Finished server process" in output, output[-3000:]
    assert not (purelib / "var").exists(), "data written inside site-packages"


def _has_bdist_wheel() -> bool:
    import setuptools

    return tuple(int(part) for part in setuptools.__version__.split(".")[:2]) >= (70, 1)


async def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + 120
    async with httpx.AsyncClient() as client:
        while asyncio.get_running_loop().time() < deadline:
            assert process.poll() is None, f"the image's command exited:\n{log.read_text()[-3000:]}"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200:\n{log.read_text()[-3000:]}")
