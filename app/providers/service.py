"""Providers: register (with a fresh secret), list, read, rotate the secret."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import BadRequest, NotFound
from app.ids import new_id
from app.providers.models import Provider
from app.providers.schemas import ProviderCreate
from app.providers.signing import new_secret
from app.providers.urls import resolve_target


async def create_provider(session: AsyncSession, *, data: ProviderCreate, allow_private: bool) -> Provider:
    """A provider with a fresh `whsec_` secret; its URL must pass the SSRF check (400 otherwise)."""
    await resolve_target(data.webhook_url, allow_private=allow_private)
    provider = Provider(
        id=new_id("prov"),
        name=data.name,
        webhook_url=data.webhook_url,
        secret=new_secret(),
        ack_required=data.ack_required,
    )
    session.add(provider)
    await session.flush()
    return provider


async def get_provider(session: AsyncSession, *, provider_id: str) -> Provider:
    provider = await session.get(Provider, provider_id)
    if provider is None:
        raise NotFound(f"no provider {provider_id}")
    return provider


async def list_providers(session: AsyncSession) -> list[Provider]:
    return list(await session.scalars(select(Provider).order_by(Provider.created_at, Provider.id)))


async def existing_ids(session: AsyncSession, *, provider_ids: list[str]) -> set[str]:
    return set(await session.scalars(select(Provider.id).where(Provider.id.in_(provider_ids))))


async def require_providers(session: AsyncSession, *, provider_ids: list[str]) -> None:
    """400 naming the first provider ID that does not exist."""
    found = await existing_ids(session, provider_ids=provider_ids)
    missing = [p for p in provider_ids if p not in found]
    if missing:
        raise BadRequest(f"no provider {missing[0]}; register it with POST /providers first")


async def rotate_secret(
    session: AsyncSession, *, provider_id: str, grace_s: float, now: datetime | None = None
) -> Provider:
    """A new secret signs from now on; the old one signs beside it until the grace period ends."""
    provider = await get_provider(session, provider_id=provider_id)
    now = now or utcnow()
    provider.previous_secret = provider.secret
    provider.previous_secret_expires_at = now + timedelta(seconds=grace_s)
    provider.secret = new_secret()
    provider.secret_rotated_at = now
    await session.flush()
    return provider


def signing_secrets(provider: Provider, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its grace period."""
    current = [provider.secret]
    if provider.previous_secret and provider.previous_secret_expires_at and provider.previous_secret_expires_at > now:
        current.append(provider.previous_secret)
    return current
