"""Webhook delivery: many deliveries to local hospitals, some flaky, one down; with and without the breaker.

Full path: `POST /cases/{id}/forwardings` through the HTTP API -> provider-forwarding runs ->
one webhook-delivery child run per provider -> signed POSTs (Standard Webhooks) over real HTTP
to `--receivers` receivers on 127.0.0.1, served by uvicorn in this process. Of the receivers,
`--flaky` answer 503 to a random `--flaky-rate` of requests, one is always down (500), the rest
always answer 200. Every receiver verifies every signature and deduplicates by `webhook-id`.
`--deliveries` is rounded to whole forwardings (one case, one forwarding to every receiver).
Fresh migrated SQLite or Postgres database, the embedded QStash, the service in this process.

Each scenario runs once with the circuit breaker (`CIRCUIT_FAILURE_THRESHOLD=--threshold`) and,
with `--compare-breaker`, once more without it (threshold out of reach), on a fresh database.

Figures per scenario: drain_s (first forwarding request until every delivery to the live
receivers has ended; the down receiver's deliveries may still be held by its open circuit),
deliveries_per_s (those deliveries / drain_s), repeats_after_accept (requests for a webhook-id
the receiver had already accepted: deliveries are at-least-once, so a repeat can happen when a
step is re-run after its POST but before its commit; it carries the same webhook-id, and these
receivers, deduplicating, accept it once: accepted twice is 0 by construction), healthy_wait_ms_p50/p95 (forwarding request to acceptance, at the
always-healthy receivers), down_attempts (requests the down receiver got during the drain: the
attempts wasted on it), down_deliveries_dead_lettered / _held, delivered, dead_lettered_live.

Prints a summary and, as its last line, one JSON object (`with_breaker`, `without_breaker`).

    .venv/bin/python bench/webhook_delivery.py --db sqlite --deliveries 1000 --compare-breaker
    .venv/bin/python bench/webhook_delivery.py --deliveries 100                          # smoke run
    .venv/bin/python bench/webhook_delivery.py --db postgres --dsn postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from standardwebhooks import Webhook, WebhookVerificationError  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from app.config import DEV_OPS_TOKEN  # noqa: E402
from app.devqstash.models import EventState, QStashEvent  # noqa: E402
from app.main import create_app  # noqa: E402
from app.providers.models import TERMINAL_DELIVERY_STATUSES, ProviderWebhook  # noqa: E402
from app.runtime.models import Event  # noqa: E402
from app.serving import serve_in_loop  # noqa: E402
from bench.support import bench_settings, fresh_database  # noqa: E402

OPS = {"Authorization": f"Bearer {DEV_OPS_TOKEN}"}


@dataclass
class Hospital:
    kind: str  # healthy | flaky | down
    rate: float = 0.0
    secret: str = ""
    accepted: set[str] = field(default_factory=set)
    repeats_after_accept: int = 0
    requests: int = 0
    accepted_at: dict[str, float] = field(default_factory=dict)
    bad_signatures: int = 0

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        self.requests += 1
        try:
            Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            self.bad_signatures += 1
            return 401
        if self.kind == "down" or (self.kind == "flaky" and random.random() < self.rate):
            return 500 if self.kind == "down" else 503
        webhook_id = headers["webhook-id"]
        if webhook_id in self.accepted:
            self.repeats_after_accept += 1  # came again after it was accepted (answered 200, not accepted again)
        else:
            self.accepted.add(webhook_id)
            self.accepted_at[webhook_id] = time.monotonic()
        return 200


def hospitals_app(hospitals: list[Hospital]) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        hospital = hospitals[int(request.path_params["index"])]
        status = hospital.answer(await request.body(), dict(request.headers))
        return JSONResponse({"status": status}, status_code=status)

    return Starlette(routes=[Route("/h/{index:int}", receive, methods=["POST"])])


async def scenario(args: argparse.Namespace, breaker: bool) -> dict[str, Any]:
    hospitals = [Hospital("down")] + [Hospital("flaky", args.flaky_rate) for _ in range(args.flaky)]
    hospitals += [Hospital("healthy") for _ in range(args.receivers - len(hospitals))]
    forwardings = max(1, args.deliveries // len(hospitals))
    settings = {
        "log_level": "ERROR",
        "embedding_warm_up": False,
        "webhook_allow_private_urls": True,
        "webhook_timeout_s": args.timeout_s,
        "webhook_max_attempts": args.max_attempts,
        "webhook_backoff_initial_s": args.backoff_s,
        "circuit_failure_threshold": args.threshold if breaker else 1_000_000,
        "circuit_cooldown_s": args.cooldown_s,
    }
    async with (
        fresh_database(args.db, args.dsn) as url,
        serve_in_loop(lambda _: hospitals_app(hospitals)) as (
            hooks_url,
            _,
        ),
    ):
        holder: dict[str, Any] = {}

        def build(base_url: str) -> Any:
            holder["app"] = create_app(bench_settings(url, base_url, **settings))
            return holder["app"]

        async with serve_in_loop(build) as (base_url, _), httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            ids = []
            for i, hospital in enumerate(hospitals):
                created = (
                    await client.post(
                        "/providers", headers=OPS, json={"name": f"H{i}", "webhook_url": f"{hooks_url}/h/{i}"}
                    )
                ).json()
                hospital.secret = created["webhook_secret"]
                ids.append(created["id"])
            expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            cases = []
            for i in range(forwardings):
                patient = (
                    await client.post("/patients", headers=OPS, json={"name": f"P{i}", "email": "p@example.org"})
                ).json()
                case = (
                    await client.post("/cases", headers=OPS, json={"patient_id": patient["id"], "procedure": "cabg"})
                ).json()
                await client.post(
                    f"/cases/{case['id']}/consents", headers=OPS, json={"provider_ids": ids, "expires_at": expires}
                )
                cases.append(case["id"])
            started, requested_at = time.monotonic(), {}
            for case_id in cases:
                answer = (
                    await client.post(f"/cases/{case_id}/forwardings", headers=OPS, json={"provider_ids": ids})
                ).json()
                requested_at[answer["forwarding_id"]] = time.monotonic()
            delivery_forwarding = {}
            for forwarding_id in requested_at:
                answer = (await client.get(f"/forwardings/{forwarding_id}", headers=OPS)).json()
                delivery_forwarding.update({p["delivery_id"]: forwarding_id for p in answer["providers"]})
            sessions = holder["app"].state.services.sessions
            others = select(func.count()).where(
                ProviderWebhook.provider_id != ids[0], ProviderWebhook.status.in_(TERMINAL_DELIVERY_STATUSES)
            )
            wanted = forwardings * (len(hospitals) - 1)
            deadline = started + args.timeout
            while time.monotonic() < deadline:  # until every delivery to the live hospitals has ended
                async with sessions() as session:
                    if await session.scalar(others) == wanted:
                        break
                await asyncio.sleep(0.2)
            drain_s = time.monotonic() - started
            down_attempts = hospitals[0].requests  # wasted on the down hospital meanwhile
            async with sessions() as session:
                rows = (await session.execute(select(ProviderWebhook.provider_id, ProviderWebhook.status))).all()
                traffic = await _traffic(session)
                reasons = (
                    await session.scalars(
                        select(ProviderWebhook.reason).where(
                            ProviderWebhook.provider_id != ids[0], ProviderWebhook.status == "dead_lettered"
                        )
                    )
                ).all()
            delivered = sum(status == "delivered" for _, status in rows)
            dead = sum(status == "dead_lettered" for p, status in rows if p != ids[0])
            down = [status for p, status in rows if p == ids[0]]
            waits = [
                (hospital.accepted_at[delivery_id] - requested_at[forwarding_id]) * 1000
                for hospital in hospitals
                if hospital.kind == "healthy"
                for delivery_id, forwarding_id in delivery_forwarding.items()
                if delivery_id in hospital.accepted_at
            ]
    total = forwardings * len(hospitals)
    waits.sort()
    return {
        "deliveries": total,
        "drain_s": round(drain_s, 2),
        "deliveries_per_s": round(forwardings * (len(hospitals) - 1) / drain_s, 1),
        "delivered": delivered,
        "dead_lettered_live": dead,
        "dead_lettered_live_reasons": sorted(set(reasons)),
        "repeats_after_accept": sum(h.repeats_after_accept for h in hospitals),
        "bad_signatures": sum(h.bad_signatures for h in hospitals),
        "healthy_wait_ms_p50": round(statistics.median(waits), 1) if waits else None,
        "healthy_wait_ms_p95": round(waits[int(len(waits) * 0.95) - 1], 1) if waits else None,
        "down_attempts": down_attempts,
        "down_deliveries_dead_lettered": sum(status == "dead_lettered" for status in down),
        "down_deliveries_held": sum(status == "pending" for status in down),
        "flaky_requests": sum(h.requests for h in hospitals if h.kind == "flaky"),
        **traffic,
    }


async def _traffic(session: Any) -> dict[str, int]:
    """QStash messages created, workflow deliveries answered 429 / 503, runs re-published as stuck."""
    created = await session.scalar(select(func.count()).where(QStashEvent.state == EventState.CREATED))
    retried = (
        await session.execute(select(QStashEvent.url, QStashEvent.details).where(QStashEvent.state == EventState.RETRY))
    ).all()
    stuck = await session.scalar(select(func.count()).where(Event.type == "workflow.stuck"))
    return {
        "qstash_messages": created or 0,
        "answered_429": sum(d.get("responseStatus") == 429 for _, d in retried),
        "answered_503": sum(d.get("responseStatus") == 503 and "/workflows/" in url for url, d in retried),
        "stuck_republished": stuck or 0,
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="Postgres server for --db postgres (a scratch database is created on it)",
    )
    parser.add_argument(
        "--deliveries",
        type=int,
        default=1000,
        help="deliveries in all (default 1000), in forwardings to every receiver",
    )
    parser.add_argument(
        "--receivers", type=int, default=20, help="receivers (default 20): one down, --flaky flaky, the rest healthy"
    )
    parser.add_argument("--flaky", type=int, default=5, help="receivers that fail transiently (default 5)")
    parser.add_argument(
        "--flaky-rate", type=float, default=0.2, help="share of a flaky receiver's requests answered 503 (default 0.2)"
    )
    parser.add_argument("--max-attempts", type=int, default=5, help="WEBHOOK_MAX_ATTEMPTS (default 5)")
    parser.add_argument("--backoff-s", type=float, default=1.0, help="WEBHOOK_BACKOFF_INITIAL_S (default 1)")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="WEBHOOK_TIMEOUT_S (default 5)")
    parser.add_argument(
        "--threshold", type=int, default=5, help="CIRCUIT_FAILURE_THRESHOLD with the breaker (default 5)"
    )
    parser.add_argument("--cooldown-s", type=float, default=30.0, help="CIRCUIT_COOLDOWN_S (default 30)")
    parser.add_argument("--compare-breaker", action="store_true", help="run a second time without the breaker")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds allowed for a scenario to drain (default 1800)"
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    figures: dict[str, Any] = {"db": args.db, "with_breaker": await scenario(args, breaker=True)}
    print("with breaker:", figures["with_breaker"], file=sys.stderr)
    if args.compare_breaker:
        figures["without_breaker"] = await scenario(args, breaker=False)
        print("without breaker:", figures["without_breaker"], file=sys.stderr)
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
