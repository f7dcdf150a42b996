"""Run every shell command of the README and the runbook on a fresh clone (issue 13).

    .venv/bin/python scripts/check_docs.py [--keep] [--install] [--postgres URL] [--only NAME]

It clones the checkout's current commit (committed work only) into a temporary directory and, in
README.md and then docs/runbook/*.md, runs every fenced block tagged sh, bash, shell, console or
shell-session, in order, each in its own `bash` with `set -euo pipefail`, starting in the clone.
Variables a block sets are carried to the next blocks of the same document (not to other
documents). A `console` block runs its `$ ` lines only. A `sql` block runs on the clone's migrated
SQLite database (`sqlite3`), so a renamed table or column fails; its `'wfr_...'` placeholders
simply match nothing. Runbook blocks run with the clone's
`.venv/bin` first on PATH, as in the container where `curaway` is on PATH.

A block is run unless the document says otherwise in an HTML comment right before it (invisible
when the Markdown is rendered; everything after the first line, up to `-->`, is hidden set-up
shell run before the block, in the same bash):

    <!-- docs-check: skip: REASON -->          not run here (a Railway account, real Upstash, ...);
                                              printed with its reason
    <!-- docs-check: server [NAME=VALUE ...] -->
                                              needs the service: `make run` is started in the
                                              background in the clone (with these settings) and
                                              awaited on /readyz; it is stopped at the end
    <!-- docs-check: stream SECONDS -->        runs until stopped (an SSE stream): passes when it
                                              is still running, without error, after SECONDS
    <!-- docs-check: postgres NAME [NAME ...] -->
                                              exports each NAME as the URL of a new, empty
                                              throwaway database (dropped at the end)

Directives combine on one line, separated by `;` (e.g. `server; stream 10`; `skip:` comes
last). Anything unmarked must exit 0; after a failure, the document's later blocks are reported
"not run".

Where a command needs an ID (a run, a document, a dead letter), the docs use a shell variable
(`RUN_ID`, `DOC`, `DLQ_ID`, ...) that an earlier block sets, or that the text asks the reader to
set and the hidden set-up sets for the check; never a placeholder such as `wfr_...` in a block.

Every block gets PORT (a free port; `make run` and the docs honour it), and a proxy that
refuses everything but 127.0.0.1/localhost (`https_proxy`, `no_proxy`), so a command that would
reach the internet fails instead.

The clone gets a `.venv` of its own holding only the clone's editable install; the dependencies
come from the running venv (a path entry, no copy), so no package index is asked and it takes
seconds. `--install` runs the clone's `make install` instead (the machine's pip configuration).
Postgres (pg_dump, psql, createdb) is the server of `--postgres` (default: TEST_DATABASE_URL's
server, else postgresql://postgres@127.0.0.1:5432/postgres), trust auth assumed.

CI runs it after `make test` (`.ci/run`); it takes about two minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHELL_TAGS = {"sh", "bash", "shell", "console", "shell-session", "zsh"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<tag>[\w-]*)")
DIRECTIVE = "<!-- docs-check:"
BLOCK_TIMEOUT_S = 300
READY_TIMEOUT_S = 180
REFUSING_PROXY = "http://127.0.0.1:9"  # discard port: nothing answers, so a request fails at once
# SQL blocks run on the clone's own SQLite database (the docs' SQL is meant for Postgres and SQLite).
SQL_PREAMBLE = ".venv/bin/curaway migrate >/dev/null && sqlite3 -bail -header var/curaway.db <<'__SQL__'"
ENV_PASSED = ("HOME", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "TESSDATA_PREFIX")


@dataclass
class Block:
    doc: str
    line: int
    tag: str
    commands: str
    setup: str = ""
    skip: str | None = None
    server: dict[str, str] | None = None
    stream_s: float | None = None
    postgres: list[str] = field(default_factory=list)


def parse(doc: Path, root: Path) -> list[Block]:
    """The shell blocks of one Markdown file, each with the directives of the comment before it."""
    lines = doc.read_text().splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(DIRECTIVE):
            comment = [line.strip().removeprefix(DIRECTIVE)]
            while "-->" not in comment[-1]:
                i += 1
                comment.append(lines[i])
            comment[-1] = comment[-1].split("-->")[0]
            pending = (comment[0].strip(), "\n".join(comment[1:]).strip())
            i += 1
            continue
        fence = FENCE.match(line)
        if not fence:
            if line.strip():
                pending = None  # a directive applies to the block right after it only
            i += 1
            continue
        start, indent, marker = i + 1, len(fence["indent"]), fence["fence"]
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(marker):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        tag = fence["tag"].lower()
        if tag in SHELL_TAGS or tag == "sql":
            commands = _console_commands(body) if tag in ("console", "shell-session") else "\n".join(body)
            block = Block(str(doc.relative_to(root)), start, tag, commands)
            if pending:
                _apply(block, *pending)
            blocks.append(block)
        elif pending:
            raise SystemExit(
                f"{doc}:{start}: a docs-check directive before a {tag or 'plain'} block, not a shell block"
            )
        pending = None
    return blocks


def _console_commands(body: list[str]) -> str:
    return "\n".join(line[2:] for line in body if line.startswith("$ "))


def _apply(block: Block, directives: str, setup: str) -> None:
    block.setup = setup
    directives, _, reason = directives.partition("skip:")  # the reason runs to the end of the line
    if _:
        block.skip = reason.strip() or "no reason given"
    for directive in filter(None, (d.strip() for d in directives.split(";"))):
        word, _, rest = directive.partition(" ")
        if word == "server":
            block.server = dict(item.split("=", 1) for item in shlex.split(rest))
        elif word == "stream":
            block.stream_s = float(rest)
        elif word == "postgres":
            block.postgres = rest.split()
        else:
            raise SystemExit(f"{block.doc}:{block.line}: unknown docs-check directive {directive!r}")
    if block.skip is None and not block.commands.strip():
        raise SystemExit(f"{block.doc}:{block.line}: an empty shell block")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, **kwargs)


def clone(workdir: Path) -> Path:
    """A fresh clone of the checkout, at its current commit."""
    commit = run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True)
    if dirty.stdout.strip():
        print("note: uncommitted changes are not checked (the clone has the last commit only)")
    target = workdir / "curaway"
    run(["git", "clone", "--quiet", "--no-local", str(REPO), str(target)])
    run(["git", "checkout", "--quiet", "--detach", commit], cwd=target)
    print(f"cloned {commit[:12]} into {target}")
    return target


def prepare_venv(root: Path, install: bool) -> None:
    """The clone's .venv: its own editable install on top of this venv's packages (no index asked)."""
    if install:
        run(["make", "install"], cwd=root)
        return
    venv = root / ".venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    purelib = Path(
        run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # A path entry, not a site directory: this venv's own editable install (.pth) is not loaded.
    (purelib / "_docs_check_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--editable",
            str(root),
        ],
        cwd=root,
        env={**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        stderr=subprocess.DEVNULL,
    )
    (venv / ".installed").touch()  # the Makefile's stamp: newer than pyproject.toml, so make does not reinstall
    check = run(
        [str(venv / "bin" / "python"), "-c", "import app; print(app.__file__)"], capture_output=True, text=True, cwd="/"
    )
    assert check.stdout.strip().startswith(str(root)), f"the clone's venv imports app from {check.stdout}"


class Postgres:
    """Throwaway databases on one server, all dropped at the end."""

    def __init__(self, url: str) -> None:
        self.server = url.rsplit("/", 1)[0]
        self.prefix = f"curaway_docs_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        try:
            self._sql(f'CREATE DATABASE "{name}"')
        except subprocess.CalledProcessError as exc:
            error = exc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"cannot create a database on {self.server} (set --postgres): {error}") from exc
        self.created.append(name)
        return f"{self.server}/{name}"

    def drop_all(self) -> None:
        for name in self.created:
            self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)

    def _sql(self, statement: str, check: bool = True) -> None:
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{self.server}/postgres", "-c", statement],
            check=check,
            capture_output=True,
        )


class Server:
    """`make run` in the clone, in the background, with given extra settings."""

    def __init__(self, root: Path, env: dict[str, str], log: Path) -> None:
        self.root, self.base_env, self.log = root, env, log
        self.process: subprocess.Popen | None = None
        self.settings: dict[str, str] | None = None

    def ensure(self, settings: dict[str, str]) -> None:
        if self.process and self.process.poll() is None and self.settings == settings:
            return
        self.stop()
        shown = " ".join(f"{k}={v}" for k, v in settings.items())
        print(f"--- starting `{shown + ' ' if shown else ''}make run` in the background (log: {self.log})")
        self.settings = settings
        self.process = subprocess.Popen(
            ["make", "run"],
            cwd=self.root,
            env={**self.base_env, **settings},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{self.base_env['PORT']}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`make run` exited {self.process.returncode}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(urllib.request.Request(url), timeout=5) as answer:
                    if answer.status == 200:
                        print(f"--- {url} answered 200")
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{url} did not answer 200 within {READY_TIMEOUT_S}s:\n{self._tail()}")

    def stop(self) -> None:
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def block_script(root: Path, state: Path, block: Block) -> str:
    commands = block.commands
    if block.tag == "sql":
        commands = f"{SQL_PREAMBLE}\n{commands}\n__SQL__"
    return "\n".join(
        [
            "set -euo pipefail",
            "set -a  # every variable set is exported, so the next block of this document sees it",
            f"trap 'env -0 > {shlex.quote(str(state))}' EXIT",
            f"cd {shlex.quote(str(root))}",
            block.setup,
            commands,
            "",
        ]
    )


def run_block(root: Path, env: dict[str, str], block: Block, state: Path) -> tuple[bool, str, dict[str, str]]:
    """Run one block; (passed, why, the environment it leaves for the next block)."""
    process = subprocess.Popen(
        ["bash", "-c", block_script(root, state, block)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    limit = block.stream_s if block.stream_s is not None else BLOCK_TIMEOUT_S
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate()
        _show(output)
        if block.stream_s is not None:
            return True, f"still streaming after {limit:g}s, stopped", env
        return False, f"timed out after {limit:g}s", env
    _show(output)
    if process.returncode != 0:
        return False, f"exit status {process.returncode}", env
    if block.stream_s is not None:
        return False, f"ended (status 0) before {limit:g}s: not a stream, drop `stream`", env
    return True, "ok", _read_state(state, env)


def _show(output: bytes) -> None:
    text = output.decode(errors="replace").rstrip()
    if text:
        print("\n".join(f"  | {line}" for line in text.splitlines()))


def _read_state(state: Path, before: dict[str, str]) -> dict[str, str]:
    if not state.exists():
        return before
    pairs = (item.split("=", 1) for item in state.read_bytes().decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in ("PWD", "OLDPWD", "SHLVL", "_")}


def base_env(root: Path, port: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
    env.update(
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PORT": str(port),
            "http_proxy": REFUSING_PROXY,
            "https_proxy": REFUSING_PROXY,
            "HTTP_PROXY": REFUSING_PROXY,
            "HTTPS_PROXY": REFUSING_PROXY,
            "ALL_PROXY": REFUSING_PROXY,
            "no_proxy": "127.0.0.1,localhost,::1",
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "PIP_NO_INDEX": "1",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env


def documents(root: Path, only: str | None) -> list[Path]:
    docs = [root / "README.md", *sorted((root / "docs" / "runbook").glob("*.md"))]
    return [d for d in docs if not only or only in str(d.relative_to(root))]


def check(root: Path, workdir: Path, postgres: Postgres, only: str | None) -> list[tuple[Block, str, str]]:
    port = free_port()
    env0 = base_env(root, port)
    server = Server(root, env0, workdir / "server.log")
    results: list[tuple[Block, str, str]] = []
    try:
        for doc in documents(root, only):
            env = dict(env0)
            if "runbook" in doc.parts:
                env["PATH"] = f"{root / '.venv' / 'bin'}:{env['PATH']}"
            failed = False
            for block in parse(doc, root):
                where = f"{block.doc}:{block.line}"
                if failed:  # later blocks of this document depend on the one that failed
                    results.append((block, "not run", "an earlier block of this document failed"))
                    continue
                if block.skip is not None:
                    print(f"=== {where}: SKIPPED: {block.skip}")
                    results.append((block, "skipped", block.skip))
                    continue
                print(f"=== {where} ({block.tag}{', server' if block.server is not None else ''})")
                for line in block.setup.splitlines():
                    print(f"  (set-up, hidden in the doc) {line}")
                print("\n".join(f"  $ {line}" for line in block.commands.splitlines()))
                try:
                    if block.server is not None:
                        server.ensure(block.server)
                    for name in block.postgres:
                        env[name] = postgres.create()
                except RuntimeError as exc:  # the block's prerequisites, not its commands
                    passed, why = False, str(exc)
                else:
                    passed, why, env = run_block(root, env, block, workdir / "state")
                print(f"=== {where}: {'passed' if passed else 'FAILED'} ({why})")
                results.append((block, "passed" if passed else "failed", why))
                failed = not passed
    finally:
        server.stop()
    return results


def default_postgres() -> str:
    url = os.environ.get("DOCS_CHECK_POSTGRES") or os.environ.get("TEST_DATABASE_URL")
    return url or "postgresql://postgres@127.0.0.1:5432/postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (and the server log) afterwards")
    parser.add_argument("--install", action="store_true", help="`make install` in the clone (asks the package index)")
    parser.add_argument(
        "--postgres", default=default_postgres(), help="a Postgres URL whose server holds the throwaway databases"
    )
    parser.add_argument("--only", metavar="NAME", help="only the documents whose path contains NAME")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="curaway-docs-"))
    postgres = Postgres(args.postgres)
    try:
        root = clone(workdir)
        prepare_venv(root, args.install)
        results = check(root, workdir, postgres, args.only)
    finally:
        postgres.drop_all()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    print(f"\n{'-' * 72}")
    for block, outcome, why in results:
        print(f"{outcome.upper():<8} {block.doc}:{block.line}" + (f"  ({why})" if outcome != "passed" else ""))
    failed = [r for r in results if r[1] == "failed"]
    counts = {o: sum(1 for r in results if r[1] == o) for o in ("passed", "skipped", "failed", "not run")}
    print(
        f"{counts['passed']} passed, {counts['skipped']} skipped, {counts['failed']} failed, "
        f"{counts['not run']} not run in {time.monotonic() - started:.0f}s" + (f"; kept {workdir}" if args.keep else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
