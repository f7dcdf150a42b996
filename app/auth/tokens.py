"""Bearer tokens: the ops token, and patient tokens (JWTs) that reach one patient's data.

A patient token is an HS256 JWT signed with `AUTH_SECRET`, `sub = "patient:<id>"`, with an
expiry. Ops authenticate with `OPS_TOKEN` itself or a JWT whose `sub` is `"ops"`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

from app.errors import Unauthorized

ISSUER = "curaway"


class Role(StrEnum):
    OPS = "ops"
    PATIENT = "patient"


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    patient_id: str | None = None

    @property
    def is_ops(self) -> bool:
        return self.role is Role.OPS


class TokenService:
    def __init__(self, *, secret: str, ops_token: str, ttl_s: int) -> None:
        self._secret = secret.encode()
        self._ops_token = ops_token
        self._ttl_s = ttl_s

    def issue(self, subject: str) -> str:
        """A token for `"ops"` or `"patient:<id>"`."""
        self._principal_for(subject)  # validates the subject
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "iat": now, "exp": now + self._ttl_s}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
        if secrets.compare_digest(token.encode(), self._ops_token.encode()):
            return Principal(Role.OPS)
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], issuer=ISSUER, options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired; ask for a new one") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("the token is not valid") from exc
        return self._principal_for(str(claims["sub"]))

    @staticmethod
    def _principal_for(subject: str) -> Principal:
        if subject == "ops":
            return Principal(Role.OPS)
        role, _, patient_id = subject.partition(":")
        if role != "patient" or not patient_id:
            raise Unauthorized("the token's subject must be 'ops' or 'patient:<id>'")
        return Principal(Role.PATIENT, patient_id)
