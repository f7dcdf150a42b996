"""The pipelines (DESIGN 4). `WORKFLOWS` is what the app serves at `POST /workflows/<name>`."""

from app.runtime.registry import Workflow

WORKFLOWS: list[Workflow] = []
