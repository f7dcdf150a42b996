"""Step results, workflow results, notify data and call answers as bounded JSON.

Everything the runtime stores for a run goes through `check_size`: compact JSON, or a
`NonRetryableError` (not JSON) / `StepOutputTooLarge` (over WORKFLOW_MAX_STEP_OUTPUT_BYTES).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from app.runtime.errors import NonRetryableError, StepOutputTooLarge


def check_size(value: Any, *, what: str, limit: int, run_id: str | None = None) -> str:
    """`value` as compact JSON; `NonRetryableError` if it is not JSON or over `limit` bytes."""
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NonRetryableError(f"{what} is not JSON-serialisable: {exc}", run_id=run_id) from exc
    size = len(encoded.encode())
    if size > limit:
        raise StepOutputTooLarge(
            f"{what} is {size} bytes, over WORKFLOW_MAX_STEP_OUTPUT_BYTES={limit}; "
            "store large data (text, files) in the database or object storage and return its ID",
            run_id=run_id,
        )
    return encoded


def jsonable(value: Any) -> Any:
    """A workflow's result as plain data: pydantic models are dumped, the rest must be JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
