"""The docs say only what is true: every `curaway` command in the README and the runbook parses,
every repository path they name exists, and every shell block is either run by the docs check or
marked as skipped with a reason.

Running the commands themselves is `scripts/check_docs.py` (issue 13): it clones the current
commit, starts `make run` where a block needs the service, and runs every shell and SQL block of
README.md and docs/runbook/ in order, failing on the first error of each document. It takes a
couple of minutes and real processes, so it is not part of this suite (which must stay under 15
minutes): CI runs it after `make test` (`.ci/run`); run it by hand with
`.venv/bin/python scripts/check_docs.py` (`--only runbook/backup` for one document, `--keep` to
keep the clone and the server's log). Blocks it cannot run here (a Railway account, real Upstash,
`make test` itself) carry `<!-- docs-check: skip: REASON -->` right before them.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from app.cli import _parser
from app.config import PROJECT_ROOT

DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs" / "runbook").glob("*.md"))]
COMMAND = re.compile(r"(?:^|`|\s)(?:\.venv/bin/)?curaway ((?:runs|schedules|migrate|serve|demo)\b[^`\n|]*)")
PATH = re.compile(r"`((?:app|docs|tests|bench|migrations)/[\w./-]*)`")


def commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in COMMAND.finditer(doc.read_text()):
            found.append((doc.name, match.group(1).split("#")[0].strip()))
    return found


@pytest.mark.parametrize(("doc", "command"), commands())
def test_every_documented_curaway_command_parses(doc: str, command: str):
    args = [
        re.sub(r"^wfr_\.\.\.$|^<.*>$", "wfr_x", arg) for arg in shlex.split(command.replace("[", "").replace("]", ""))
    ]
    args = [a for a in args if a not in ("...", "|")]
    try:
        _parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `curaway {command}` does not parse (exit {exc.code})")


def test_every_repository_path_named_in_the_docs_exists():
    missing = []
    for doc in [*DOCS, PROJECT_ROOT / "docs" / "architecture.md", PROJECT_ROOT / "docs" / "runtime.md"]:
        for path in PATH.findall(doc.read_text()):
            if "<" not in path and not (PROJECT_ROOT / path.rstrip("/")).exists():
                missing.append(f"{doc.name}: {path}")
    assert not missing, "\n".join(missing)


def test_the_commands_are_found():
    assert len(commands()) >= 5
    assert Path(PROJECT_ROOT / "docs" / "runbook" / "README.md").is_file()


def _docs_check():
    spec = importlib.util.spec_from_file_location("check_docs", PROJECT_ROOT / "scripts" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_docs", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_shell_block_is_run_by_the_docs_check_or_skipped_with_a_reason():
    check = _docs_check()
    blocks = [block for doc in check.documents(PROJECT_ROOT, None) for block in check.parse(doc, PROJECT_ROOT)]
    run = [b for b in blocks if b.skip is None]
    assert len(run) >= 10, [f"{b.doc}:{b.line}" for b in blocks]
    assert all(b.skip.strip() for b in blocks if b.skip is not None)
    # Placeholders a shell cannot run are gone from the blocks that run (use variables set earlier).
    placeholders = [f"{b.doc}:{b.line}" for b in run if b.tag != "sql" and re.search(r"_\.\.\.|<[a-z ]+>", b.commands)]
    assert not placeholders, placeholders
