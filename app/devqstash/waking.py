"""The embedded server's background loops sleep the same way: until woken, due, or the poll."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime


async def sleep_until(wake: asyncio.Event, *, poll_s: float, next_due: datetime | None, now: datetime) -> None:
    """Return when `wake` is set, when `next_due` comes, or after `poll_s`; then clear `wake`."""
    timeout = poll_s
    if next_due is not None:
        timeout = min(timeout, max(0.0, (next_due - now).total_seconds()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)
    wake.clear()
