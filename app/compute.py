"""CPU-bound work (OCR, extraction, embeddings, FHIR validation) off the event loop, in threads of its own.

`asyncio.to_thread` runs on the loop's default executor, which also serves the short blocking
calls a request makes (an upload's chunk writes, its fsync, the rename). Analysis steps that
each hold a thread for seconds would take every one of its `min(32, cores + 4)` threads, and an
upload would wait behind them (17 s, measured, with ten documents in analysis on 2 cores).
CPU-bound work runs here instead: at most one thread per core, since more would only share the
cores (with six, the document pipeline was no faster), and the default executor stays free for
I/O.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

COMPUTE_THREADS = os.cpu_count() or 2
_executor = ThreadPoolExecutor(max_workers=COMPUTE_THREADS, thread_name_prefix="compute")


async def run_cpu(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread` for CPU-bound work: `fn(*args, **kwargs)` in a compute thread, with this context."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor, call)
