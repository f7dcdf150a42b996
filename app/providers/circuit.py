"""The circuit breaker per provider (state on the `providers` row, transitions as events).

closed --N consecutive failed attempts--> open --cool-down over, one delivery takes the probe-->
half_open --probe delivered--> closed;  half_open --probe failed--> open (a new cool-down).

While a provider's circuit is not closed, its deliveries do not send: `gate` tells them how long
to wait (until the cool-down ends; while a probe is out, a tenth of the cool-down, at least 1 s)
and which event wakes them earlier: the probe's success notifies `closed_event_id`, so they
drain at once. They wait durably (no process held) and ask again.
Only the probe sends. A probe whose process died is given up after a lease (the cool-down), and
another delivery takes it.
Every function here runs inside the caller's transaction with the provider row locked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.providers.models import CircuitState, Provider
from app.runtime.events import record_event


@dataclass(frozen=True, slots=True)
class Gate:
    send: bool
    wait_s: float = 0.0
    closed_event: str | None = None  # notified when this opening of the circuit closes


def closed_event_id(provider: Provider) -> str:
    """The event a probe's success notifies; one per opening, so a late waiter of an old one
    cannot take a notification meant for another."""
    opened = provider.circuit_opened_at
    return f"circuit-closed:{provider.id}:{int(opened.timestamp() * 1000) if opened else 0}"


async def lock_provider(session: AsyncSession, provider_id: str) -> Provider:
    provider = await session.get(Provider, provider_id, with_for_update=True, populate_existing=True)
    assert provider is not None, provider_id
    return provider


def _transition(session: AsyncSession, provider: Provider, state: CircuitState, **payload: object) -> None:
    previous = provider.circuit_state
    provider.circuit_state = state
    record_event(
        session,
        f"circuit.{state.value}",
        payload={"provider_id": provider.id, "from": previous, "failures": provider.consecutive_failures, **payload},
    )


def gate(session: AsyncSession, provider: Provider, delivery_id: str, now: datetime, cooldown_s: float) -> Gate:
    """May this delivery send now? If the circuit is open, maybe as the probe; else how long to wait."""
    if provider.circuit_state == CircuitState.CLOSED:
        return Gate(True)
    if provider.probe_delivery_id == delivery_id:
        return Gate(True)  # this delivery is the probe (asked again after a crash)
    opened = provider.circuit_opened_at or now
    reopen_at = opened + timedelta(seconds=cooldown_s)
    probe_lapsed = provider.probe_expires_at is not None and provider.probe_expires_at <= now
    if provider.circuit_state == CircuitState.OPEN and now >= reopen_at or probe_lapsed:
        provider.probe_delivery_id = delivery_id
        provider.probe_expires_at = now + timedelta(seconds=cooldown_s)
        _transition(session, provider, CircuitState.HALF_OPEN, probe_delivery_id=delivery_id)
        return Gate(True)
    if provider.circuit_state == CircuitState.HALF_OPEN:  # ask again soon: the probe may succeed
        remaining = ((provider.probe_expires_at or now) - now).total_seconds()
        return Gate(False, max(0.5, min(remaining, max(1.0, cooldown_s / 10))), closed_event_id(provider))
    return Gate(False, max(0.5, (reopen_at - now).total_seconds()), closed_event_id(provider))


def record_success(session: AsyncSession, provider: Provider) -> str | None:
    """Reset the count; if this closed the circuit, the event to notify its waiters with."""
    provider.consecutive_failures = 0
    if provider.circuit_state == CircuitState.CLOSED:
        return None
    event = closed_event_id(provider)
    provider.probe_delivery_id = None
    provider.probe_expires_at = None
    provider.circuit_opened_at = None
    _transition(session, provider, CircuitState.CLOSED)
    return event


def record_failure(session: AsyncSession, provider: Provider, delivery_id: str, now: datetime, threshold: int) -> None:
    provider.consecutive_failures += 1
    probe_failed = provider.circuit_state == CircuitState.HALF_OPEN and provider.probe_delivery_id == delivery_id
    if probe_failed or (provider.circuit_state == CircuitState.CLOSED and provider.consecutive_failures >= threshold):
        provider.circuit_opened_at = now
        provider.probe_delivery_id = None
        provider.probe_expires_at = None
        _transition(session, provider, CircuitState.OPEN)


def release_probe(provider: Provider, delivery_id: str) -> None:
    """A probe that ended without an answer about the provider (no consent, gone) frees the slot."""
    if provider.probe_delivery_id == delivery_id:
        provider.probe_delivery_id = None
        provider.probe_expires_at = None
        provider.circuit_state = CircuitState.OPEN
