"""The background delivery loop of the embedded QStash server.

Each tick claims due messages (see `store` for how claims stay exclusive across loops and
processes), starts one task per claimed message, and sleeps until the next poll, the next
due time it knows of, or a wake-up (a publish in this process, a finished delivery).

Claims are short leases that the live holder keeps renewing (crash recovery in seconds):
- A claim lasts `CLAIM_LEASE_S` (10 s). Every `CLAIM_CHECK_INTERVAL_S` (2 s) the loop first
  renews every claim it holds, whatever the attempt's own timeout (up to 15 minutes), and then
  takes over claims that lapsed. A claim lapses only when its holder stopped renewing it: the
  process died (SIGKILL, power loss) or its event loop stalled for over 8 s.
- So a delivery left behind by a dead process is delivered again at most ~12 s after the
  death by any live process on the database, or as soon as a process starts (it checks at
  once). The take-over counts as a failed attempt (`Upstash-Retried` goes up, and a message
  that had no retries left is dead-lettered) but is due at once: the dead attempt's time has
  already served as its backoff.
- A live holder never loses a claim while it runs, so no attempt is delivered twice at the
  same time. Renewing its own claims before looking for lapsed ones means a loop that stalled
  never takes over its own in-flight delivery. If a renewal finds a claim gone (the message
  was cancelled, or another process took it over after a stall), the attempt in flight is
  cancelled and nothing is recorded for it.
- At most `concurrency` deliveries run at once in one loop; a tick claims only free slots.
- `stop()` lets running settle transactions finish, cancels in-flight HTTP attempts and gives
  their messages back as pending (not counted as an attempt): they are delivered again later,
  by this process after a restart or by another one. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.devqstash import dlq, events, store
from app.devqstash.attempt import ABANDONED, Outcome, attempt
from app.devqstash.models import QStashMessage
from app.devqstash.settle import Result, settle
from app.runtime.background import BackgroundLoop

logger = logging.getLogger(__name__)

CLAIM_LEASE_S = 10.0
CLAIM_CHECK_INTERVAL_S = 2.0
PRUNE_INTERVAL_S = 60.0


class DeliveryLoop:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        signing_key: Callable[[], str],
        retry_scale: float,
        delivery_timeout_s: float,
        poll_interval_s: float,
        concurrency: int,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._signing_key = signing_key
        self._retry_scale = retry_scale
        self._timeout_s = delivery_timeout_s
        self._poll_s = poll_interval_s
        self._concurrency = concurrency
        self._clock = clock
        self._next_due: datetime | None = None
        self._background = BackgroundLoop("devqstash-delivery", self._tick, pause_s=self._pause_s, logger=logger)
        self._deliveries: set[asyncio.Task[None]] = set()
        self._attempts: dict[str, asyncio.Task[Outcome]] = {}  # message ID -> HTTP attempt in flight
        self._claims: dict[str, str] = {}  # message ID -> claim token, renewed until settled
        self._last_claim_check = float("-inf")
        self._last_prune = float("-inf")

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def wake(self, due: datetime | None = None) -> None:
        """Run a tick now, or note that something becomes due at `due`."""
        if due is not None and due > self.now():
            if self._next_due is not None and self._next_due <= due:
                return
            self._next_due = due  # earlier than the loop knew: let it recompute its pause
        self._background.wake()

    async def start(self) -> None:
        if not self._background.running:
            self._last_claim_check = float("-inf")  # look for claims lapsed while we were down
            self._background.start()

    async def stop(self) -> None:
        if not self._background.running:
            return
        await self._background.stop()
        for running in list(self._attempts.values()):
            running.cancel()
        await asyncio.gather(*list(self._deliveries), return_exceptions=True)
        await self._release_claims()

    async def _release_claims(self) -> None:
        if not self._claims:
            return
        try:
            async with transaction(self._sessions) as session:
                released = await store.release(session, self._claims)
        except Exception:
            logger.exception("could not release %d claims; they are redelivered once they lapse", len(self._claims))
            return
        logger.info("released %d in-flight deliveries for redelivery", released)
        self._claims.clear()

    def _pause_s(self) -> float:
        """Until the next poll, claim check, or due time this loop knows of, whichever is first."""
        pause = min(self._poll_s, CLAIM_CHECK_INTERVAL_S)
        if self._next_due is not None:
            pause = min(pause, (self._next_due - self.now()).total_seconds())
        return pause

    async def _tick(self) -> None:
        if self._next_due is not None and self._next_due <= self.now():
            self._next_due = None
        free = 0 if self._background.stopping else self._concurrency - len(self._deliveries)
        check = self._clock() - self._last_claim_check >= CLAIM_CHECK_INTERVAL_S
        if free > 0 or check:
            await self._claim(free, check=check)
        await self._maybe_prune()

    async def _claim(self, free: int, *, check: bool) -> None:
        """Renew our claims and take over lapsed ones (when `check`), then claim due messages."""
        now = self.now()
        token = store.new_id("clm_")
        until = now + timedelta(seconds=CLAIM_LEASE_S)
        held_before = dict(self._claims)
        async with transaction(self._sessions) as session:
            held: set[str] | None = None
            lapsed: list[QStashMessage] = []
            if check:
                held = await store.renew(session, set(held_before.values()), claimed_until=until)
                if free > 0:
                    lapsed = await store.claim_expired(session, now=now, limit=free, token=token, claimed_until=until)
            due: list[QStashMessage] = []
            if free > len(lapsed):
                due = await store.claim_due(
                    session, now=now, limit=free - len(lapsed), token=token, claimed_until=until
                )
        if check:
            self._last_claim_check = self._clock()
            self._drop_lost(held_before, held or set())
        for message in lapsed:
            logger.warning("message %s: taking over a lapsed claim; counting it as a failed attempt", message.id)
            self._spawn(message, token, Outcome(status=None, error=ABANDONED))
        for message in due:
            self._spawn(message, token, None)

    def _drop_lost(self, held_before: dict[str, str], held: set[str]) -> None:
        """Forget claims a renewal no longer found, and cancel their attempts in flight."""
        for message_id, token in held_before.items():
            if message_id in held or self._claims.get(message_id) != token:
                continue  # still ours, or settled (and maybe claimed again) meanwhile
            self._forget(message_id, token)
            running = self._attempts.get(message_id)
            if running is not None:
                logger.warning("message %s: claim lost (cancelled or taken over); abandoning its attempt", message_id)
                running.cancel()

    def _forget(self, message_id: str, token: str) -> None:
        """Stop renewing the claim `token` on `message_id` (not a newer claim of the same message)."""
        if self._claims.get(message_id) == token:
            del self._claims[message_id]

    def _spawn(self, message: QStashMessage, token: str, outcome: Outcome | None) -> None:
        self._claims[message.id] = token
        task = asyncio.create_task(self._deliver(message, token, outcome), name=f"devqstash-{message.id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, message: QStashMessage, token: str, outcome: Outcome | None) -> None:
        try:
            if outcome is None:
                outcome = await self._attempt(message)
            if outcome is not None:
                await self._settle(message, token, outcome)
        except Exception:
            logger.exception("delivery of message %s failed; it is taken over once its claim lapses", message.id)
            self._forget(message.id, token)  # stop renewing: the claim lapses and is taken over
        finally:
            self._background.wake()  # a slot is free

    async def _attempt(self, message: QStashMessage) -> Outcome | None:
        """The attempt's outcome, or None when it was cancelled: by `stop()`, or its claim was lost."""
        if self._background.stopping:
            return None
        timeout_s = min(message.timeout_s or self._timeout_s, self._timeout_s)
        running = asyncio.create_task(
            attempt(self._http, message, signing_key=self._signing_key(), timeout_s=timeout_s, now=self._clock())
        )
        self._attempts[message.id] = running
        try:
            return await running
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if running.cancelled() and not (current and current.cancelling()):
                return None
            running.cancel()
            raise
        finally:
            if self._attempts.get(message.id) is running:
                del self._attempts[message.id]

    async def _settle(self, message: QStashMessage, token: str, outcome: Outcome) -> None:
        async with transaction(self._sessions) as session:
            settled = await settle(session, message, token, outcome, now=self.now(), retry_scale=self._retry_scale)
        self._forget(message.id, token)
        if settled.next_due is not None:
            self.wake(settled.next_due)
        if settled.published:
            self._background.wake()
        level = logging.DEBUG if settled.result is Result.DELIVERED else logging.WARNING
        logger.log(
            level,
            "message %s to %s attempt %d: %s (%s)",
            message.id,
            message.url,
            message.retried,
            settled.result,
            outcome.status if outcome.status is not None else outcome.error,
        )

    async def _maybe_prune(self) -> None:
        if self._clock() - self._last_prune < PRUNE_INTERVAL_S:
            return
        self._last_prune = self._clock()
        now = self.now()
        async with transaction(self._sessions) as session:
            counts = (
                await events.prune(session, now=now),
                await store.prune_dedup(session, now=now),
                await dlq.prune(session, now=now),
            )
        if any(counts):
            logger.info("pruned %d events, %d dedup keys, %d DLQ entries", *counts)
