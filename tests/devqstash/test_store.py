"""The store's claim invariants, exercised with really concurrent transactions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory, transaction, utcnow
from app.devqstash import store
from app.devqstash.attempt import Outcome
from app.devqstash.models import QStashMessage
from app.devqstash.settle import Result, settle
from app.devqstash.spec import MessageSpec


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _publish(sessions, count: int, **fields) -> list[str]:
    async with transaction(sessions) as session:
        specs = [MessageSpec(url=f"http://127.0.0.1:9/m{n}", body=b"x", **fields) for n in range(count)]
        return [(await store.publish(session, spec, now=utcnow()))[0] for spec in specs]


async def test_concurrent_claims_never_share_a_message(sessions):
    ids = await _publish(sessions, 30)
    now = utcnow()

    async def claimer(number: int) -> set[str]:
        async with transaction(sessions) as session:
            claimed = await store.claim_due(
                session, now=now, limit=30, token=f"clm_{number}", claimed_until=now + timedelta(minutes=1)
            )
            await asyncio.sleep(0.1)  # hold the claimed rows while the others try
            return {message.id for message in claimed}

    claims = await asyncio.gather(*(claimer(n) for n in range(4)))

    assert sum(len(claim) for claim in claims) == 30
    assert set().union(*claims) == set(ids)


async def test_an_outcome_arriving_after_a_cancel_changes_nothing(sessions):
    [message_id] = await _publish(sessions, 1, callback="http://127.0.0.1:9/cb", max_retries=3)
    now = utcnow()
    async with transaction(sessions) as session:
        [message] = await store.claim_due(
            session, now=now, limit=1, token="clm_a", claimed_until=now + timedelta(minutes=1)
        )
    async with transaction(sessions) as session:
        assert await store.cancel(session, [message_id], now=now) == 1

    async with transaction(sessions) as session:
        settled = await settle(session, message, "clm_a", Outcome(status=500), now=utcnow(), retry_scale=1.0)

    assert settled.result is Result.LOST
    async with transaction(sessions) as session:
        assert await session.scalar(select(func.count()).select_from(QStashMessage)) == 0  # no retry, no callback
