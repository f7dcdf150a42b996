"""Rate limits by path pattern, per bearer token and per client IP, answered 429 with Retry-After.

Rules come from the RATE_LIMITS setting: `[METHOD ]PATTERN=COUNT/SECONDS`, comma-separated, e.g.
`POST /cases/*/documents=30/60` (see app/security/paths.py for patterns). A request matching a rule
takes one token from two buckets, the rule's bucket for its token and the one for its IP; each
holds COUNT tokens and refills COUNT per SECONDS. A new route is limited by adding a rule (no code).

The buckets live in this process's memory: with N replicas the effective limit is N times the
configured one. The client IP is the connection's peer, or X-Forwarded-For's where uvicorn trusts
the proxy (FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.security.paths import PathPattern

MAX_BUCKETS = 100_000


class RateLimitConfigError(ValueError):
    """RATE_LIMITS holds a rule that does not parse."""


@dataclass(frozen=True)
class Rule:
    route: PathPattern
    count: int
    period_s: float

    @property
    def rate(self) -> float:
        return self.count / self.period_s


def parse_rules(text: str) -> tuple[Rule, ...]:
    """`"POST /auth/=20/60, /x=5/1"` -> rules; raises RateLimitConfigError naming the bad rule."""
    rules = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        try:
            target, limit = raw.rsplit("=", 1)
            count, period = limit.split("/")
            method, _, pattern = target.strip().rpartition(" ")
            rule = Rule(PathPattern(method.strip().upper(), pattern), int(count), float(period))
        except ValueError as exc:
            raise RateLimitConfigError(f"RATE_LIMITS: cannot read {raw!r}; write [METHOD ]PATH=COUNT/SECONDS") from exc
        if rule.count < 1 or rule.period_s <= 0 or not pattern.startswith("/"):
            raise RateLimitConfigError(f"RATE_LIMITS: {raw!r} needs a path starting with / and positive numbers")
        rules.append(rule)
    return tuple(rules)


class RateLimiter:
    """Token buckets keyed by (rule, token or IP); `now` is injectable for tests."""

    def __init__(self, rules: tuple[Rule, ...], *, now: Callable[[], float] = time.monotonic) -> None:
        self.rules = rules
        self._now = now
        self._buckets: dict[tuple[int, str], tuple[float, float]] = {}  # key -> (tokens, updated)

    def rule_for(self, method: str, path: str) -> tuple[int, Rule] | None:
        return next(((i, r) for i, r in enumerate(self.rules) if r.route.matches(method, path)), None)

    def take(self, index: int, rule: Rule, keys: list[str]) -> float:
        """Take one token from each key's bucket; 0 if allowed, else the seconds until it would be."""
        now = self._now()
        levels = [self._level((index, key), rule, now) for key in keys]
        wait = max((1 - level) / rule.rate for level in levels)
        if wait > 0:
            return wait
        for key, level in zip(keys, levels, strict=True):
            self._buckets[(index, key)] = (level - 1, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._prune(now)
        return 0.0

    def _level(self, key: tuple[int, str], rule: Rule, now: float) -> float:
        tokens, updated = self._buckets.get(key, (float(rule.count), now))
        return min(float(rule.count), tokens + (now - updated) * rule.rate)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (they equal a new one)."""
        for key, (tokens, updated) in list(self._buckets.items()):
            rule = self.rules[key[0]]
            if tokens + (now - updated) * rule.rate >= rule.count:
                del self._buckets[key]


class RateLimit:
    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.limiter.rule_for(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        index, rule = found
        wait = self.limiter.take(index, rule, _client_keys(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        detail = (
            f"too many requests to {rule.route}: at most {rule.count} per {rule.period_s:g} s; retry in {retry_after} s"
        )
        response = JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(retry_after)})
        await response(scope, receive, send)


def _client_keys(scope: Scope) -> list[str]:
    client = scope.get("client")
    keys = [f"ip:{client[0] if client else 'unknown'}"]
    for name, value in scope["headers"]:
        if name == b"authorization":
            keys.append(f"token:{hashlib.sha256(value).hexdigest()[:32]}")
            break
    return keys
