"""Identifiers: one `wfr_` ID per run (DESIGN 3.2, invariant 8)."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits + "_-"


def new_run_id() -> str:
    """`wfr_` and 21 random URL-safe characters, like the Upstash SDKs' run IDs."""
    return "wfr_" + "".join(secrets.choice(_ALPHABET) for _ in range(21))


def derived_run_id(*parts: str) -> str:
    """A deterministic run ID from stable parts (a parent run and step, a schedule tick)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"wfr_{digest[:21]}"
