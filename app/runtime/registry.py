"""Declaring workflows: `@workflow(name, on_failure=...)` and the registry the app serves.

A workflow is an async function `(ctx, payload) -> result`. If its payload parameter is
annotated with a pydantic model, deliveries validate the stored payload into that model.
The decorator only describes; the app decides which workflows it serves by handing a list
to the runtime (no import-time global registry).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel

from app.runtime.errors import UnknownWorkflowError

WorkflowFn = Callable[[Any, Any], Awaitable[Any]]
FailureHandler = Callable[[Any], Awaitable[Any] | Any]


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    fn: WorkflowFn
    on_failure: FailureHandler | None = None
    payload_model: type[BaseModel] | None = None
    on_failure_retries: int | None = None

    def parse_payload(self, raw: Any) -> Any:
        if self.payload_model is None:
            return raw
        return self.payload_model.model_validate(raw)

    async def __call__(self, ctx: Any, payload: Any) -> Any:
        return await self.fn(ctx, payload)


def workflow(
    name: str, *, on_failure: FailureHandler | None = None, on_failure_retries: int | None = None
) -> Callable[[WorkflowFn], Workflow]:
    """Declare a durable workflow served at `POST /workflows/<name>`."""

    def decorate(fn: WorkflowFn) -> Workflow:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"workflow {name!r} must be an async function")
        return Workflow(name, fn, on_failure, _payload_model(fn), on_failure_retries)

    return decorate


def _payload_model(fn: WorkflowFn) -> type[BaseModel] | None:
    params = list(inspect.signature(fn).parameters)
    if len(params) < 2:
        raise TypeError(f"{fn.__qualname__} must take (ctx, payload)")
    hint = get_type_hints(fn).get(params[1])
    return hint if inspect.isclass(hint) and issubclass(hint, BaseModel) else None


class WorkflowRegistry:
    def __init__(self, workflows: Iterable[Workflow]) -> None:
        self._by_name: dict[str, Workflow] = {}
        for wf in workflows:
            if wf.name in self._by_name:
                raise ValueError(f"two workflows are named {wf.name!r}")
            self._by_name[wf.name] = wf

    def get(self, name: str) -> Workflow:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownWorkflowError(f"no workflow named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)
