"""The `Upstash-Signature` the embedded server puts on every delivery (protocol doc 5.1).

Written here with PyJWT, independently of the runtime's verifier (`app.runtime.signing`), so
a mistake in one cannot hide the same mistake in the other: the tests check these tokens
with the runtime's verifier and with the official `qstash.Receiver`, and against the
protocol's test vector.

A token is a JWT, HS256, keyed with the signing key's UTF-8 bytes, with the claims (in this
order) `iss="Upstash"`, `sub=<destination URL>`, `exp=iat+300`, `nbf`, `iat`, `jti` and
`body=<base64url SHA-256 of the raw body, with its = padding>`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import warnings

import jwt
from jwt.warnings import InsecureKeyLengthWarning

# QStash's signing keys are short strings by design; PyJWT's key-length advice does not apply.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

ISSUER = "Upstash"
LIFETIME_S = 300


def sign_delivery(body: bytes, url: str, key: str, *, now: float | None = None, jti: str | None = None) -> str:
    """The `Upstash-Signature` for delivering `body` to exactly `url`, signed with `key`."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER,
        "sub": url,
        "exp": issued + LIFETIME_S,
        "nbf": issued,
        "iat": issued,
        "jti": jti or f"jwt_{secrets.token_hex(12)}",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
    }
    return jwt.encode(claims, key.encode(), algorithm="HS256")
