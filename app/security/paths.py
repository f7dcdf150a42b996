"""Path patterns shared by the limits: `/cases/*/documents`, where `*` is one path segment.

A pattern matches a path that starts with it, segment by segment (`/auth/` matches
`/auth/dev-token`; `/cases/*/documents` matches `/cases/case_1/documents`, not `/cases/x`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PathPattern:
    method: str  # "" = any method
    pattern: str

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        want = self.pattern.strip("/").split("/")
        have = path.strip("/").split("/")
        if self.pattern.endswith("/") and len(have) <= len(want):
            return False  # "/auth/" means below /auth, not /auth itself
        if len(have) < len(want):
            return False
        return all(w == "*" or w == h for w, h in zip(want, have, strict=False))

    def __str__(self) -> str:
        return f"{self.method} {self.pattern}".strip()
