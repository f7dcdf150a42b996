"""The demo's HTTP calls: each failure becomes a `DemoError` whose message the user can act on."""

from __future__ import annotations

from typing import Any

import httpx


class DemoError(Exception):
    """Something that stops the demo; its message is shown to the user as is."""


async def check_reachable(client: httpx.AsyncClient, url: str) -> None:
    try:
        response = await client.get("/healthz")
    except httpx.TransportError as exc:
        raise DemoError(
            f"cannot reach the Curaway service at {url} ({transport_reason(exc)}); "
            "start it with `curaway serve` (or `make run`), or pass --url"
        ) from exc
    if response.status_code != 200:
        raise DemoError(f"{url}/healthz answered {response.status_code}: is this a Curaway service?")


def transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {exc}" if str(exc) else "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def dev_token(client: httpx.AsyncClient, url: str) -> str:
    response = await request(client, "POST", "/auth/dev-token", json={"sub": "ops"})
    if response.status_code == 404:
        raise DemoError(
            f"the service at {url} is not in development mode (no /auth/dev-token route); "
            "pass the ops token with --token"
        )
    if response.status_code != 200:
        raise DemoError(f"could not get a development token: {detail(response)}")
    return str(response.json()["token"])


async def request(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return await client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise DemoError(f"{method} {path} failed: {transport_reason(exc)}") from exc


async def post(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any], *, what: str
) -> dict[str, Any]:
    response = await request(client, "POST", path, json=body, headers=headers)
    if response.status_code in (401, 403):
        raise DemoError(f"could not {what}: the token was refused ({response.status_code}: {detail(response)})")
    if response.status_code != 201:
        raise DemoError(f"could not {what}: {response.status_code} {detail(response)}")
    return response.json()


async def get(client: httpx.AsyncClient, path: str, headers: dict[str, str], *, what: str) -> dict[str, Any]:
    response = await request(client, "GET", path, headers=headers)
    if response.status_code != 200:
        raise DemoError(f"could not {what}: {response.status_code} {detail(response)}")
    return response.json()


def detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else (response.text.strip()[:200] or response.reason_phrase)
