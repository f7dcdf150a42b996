"""Provider routes (ops): register, list, read, rotate the secret, delivery history (DESIGN 5)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.auth.dependencies import OpsDep
from app.dependencies import RuntimeDep, SessionDep, SettingsDep
from app.errors import error_responses
from app.providers import acks, deliveries, service
from app.providers.schemas import (
    AckAccepted,
    AckCreate,
    DeliveryHistory,
    DeliveryList,
    ProviderCreate,
    ProviderCreated,
    ProviderList,
    ProviderRead,
    Replayed,
    SecretRotated,
)

router = APIRouter(tags=["providers"], responses=error_responses(400, 401, 403, 404, 409))


@router.post("/providers", status_code=201)
async def create_provider(
    body: ProviderCreate, session: SessionDep, settings: SettingsDep, _: OpsDep
) -> ProviderCreated:
    """Register a hospital; its `webhook_secret` is shown in this answer only."""
    provider = await service.create_provider(session, data=body, allow_private=settings.webhook_allow_private_urls)
    read = ProviderRead.model_validate(provider)
    return ProviderCreated(**read.model_dump(), webhook_secret=provider.secret)


@router.get("/providers")
async def list_providers(session: SessionDep, _: OpsDep) -> ProviderList:
    return ProviderList(items=[ProviderRead.model_validate(p) for p in await service.list_providers(session)])


@router.get("/providers/{provider_id}")
async def read_provider(provider_id: str, session: SessionDep, _: OpsDep) -> ProviderRead:
    return ProviderRead.model_validate(await service.get_provider(session, provider_id=provider_id))


@router.post("/providers/{provider_id}/rotate-secret")
async def rotate_secret(provider_id: str, session: SessionDep, settings: SettingsDep, _: OpsDep) -> SecretRotated:
    """A new secret (shown once); the old one keeps signing beside it for WEBHOOK_SECRET_GRACE_S."""
    provider = await service.rotate_secret(session, provider_id=provider_id, grace_s=settings.webhook_secret_grace_s)
    assert provider.previous_secret_expires_at is not None
    return SecretRotated(
        id=provider.id, webhook_secret=provider.secret, previous_secret_valid_until=provider.previous_secret_expires_at
    )


@router.get("/providers/{provider_id}/deliveries")
async def provider_deliveries(
    provider_id: str,
    session: SessionDep,
    _: OpsDep,
    status: str | None = Query(default=None, description="pending, delivered, dead_lettered or skipped_no_consent"),
    limit: int = Query(default=100, ge=1, le=500),
) -> DeliveryList:
    """The provider's deliveries, newest first, each with every attempt."""
    await service.get_provider(session, provider_id=provider_id)
    items = await deliveries.provider_deliveries(session, provider_id=provider_id, status=status, limit=limit)
    return DeliveryList(items=items)


@router.get("/deliveries/{delivery_id}")
async def read_delivery(delivery_id: str, session: SessionDep, _: OpsDep) -> DeliveryHistory:
    return await deliveries.delivery_history(session, delivery_id=delivery_id)


@router.post("/webhooks/ack/{delivery_id}", status_code=202)
async def acknowledge(
    delivery_id: str, body: AckCreate, session: SessionDep, settings: SettingsDep, runtime: RuntimeDep
) -> AckAccepted:
    """A hospital acknowledges a delivery with the token its payload carried (`data.ack.token`)."""
    await acks.acknowledge(
        session,
        runtime=runtime,
        delivery_id=delivery_id,
        token=body.token,
        secret=settings.auth_secret.get_secret_value(),
    )
    return AckAccepted(delivery_id=delivery_id)


@router.post("/deliveries/{delivery_id}/replay", status_code=202)
async def replay_delivery(delivery_id: str, session: SessionDep, runtime: RuntimeDep, _: OpsDep) -> Replayed:
    """Send a dead-lettered delivery again: a new attempt series, the same `webhook-id` (409 otherwise)."""
    return Replayed(**await deliveries.replay_dead_letter(session, runtime=runtime, delivery_id=delivery_id))
