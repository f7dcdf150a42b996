"""Prefixed random IDs for domain rows (`pat_`, `case_`, `doc_`, ...)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"
