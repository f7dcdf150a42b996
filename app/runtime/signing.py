"""The `Upstash-Signature` scheme, signed and verified exactly as QStash does.

A token is a JWT signed with HS256 using the signing key's UTF-8 bytes, with the claims
`iss="Upstash"`, `sub=<destination URL>`, `iat`, `nbf`, `exp=iat+300`, `jti` and
`body=<base64url SHA-256 of the raw body>` (shared/docs/qstash-protocol.md, section 5.1).

Verification differs from the official `Receiver` in two deliberate ways:
- the clock leeway really applies (the official client's `clock_tolerance` has no effect);
- `sub` is always checked against the URL the request was addressed to, so a token signed
  for one endpoint cannot be replayed against another.
The current key is tried first, then the next key (key rotation).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import warnings

import jwt
from jwt.warnings import InsecureKeyLengthWarning

# QStash's signing keys are 32-character strings by design; PyJWT's length advice does not apply.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

ISSUER = "Upstash"
TOKEN_LIFETIME_S = 300


class SignatureError(Exception):
    """The request's `Upstash-Signature` is missing or does not verify."""


def body_hash(body: bytes) -> str:
    """base64url SHA-256 of the body, with `=` padding, as QStash writes it."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()


def sign(body: bytes, url: str, key: str, *, now: float | None = None, jti: str | None = None) -> str:
    """A QStash signature for delivering `body` to `url`."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER,
        "sub": url,
        "exp": issued + TOKEN_LIFETIME_S,
        "nbf": issued,
        "iat": issued,
        "jti": jti or f"jwt_{secrets.token_hex(12)}",
        "body": body_hash(body),
    }
    return jwt.encode(claims, key.encode(), algorithm="HS256")


def verify(
    token: str | None,
    body: bytes,
    url: str,
    keys: tuple[str, ...],
    *,
    leeway_s: float = 0.0,
) -> dict[str, object]:
    """Return the token's claims if it was signed for `url` and `body` by one of `keys`."""
    if not token:
        raise SignatureError("missing Upstash-Signature header")
    errors: list[str] = []
    for key in keys:
        try:
            return _verify_with_key(token, body, url, key, leeway_s=leeway_s)
        except SignatureError as exc:
            errors.append(str(exc))
    raise SignatureError("; ".join(dict.fromkeys(errors)) or "no signing key configured")


def _verify_with_key(token: str, body: bytes, url: str, key: str, *, leeway_s: float) -> dict[str, object]:
    options = {"require": ["iss", "sub", "exp", "nbf"], "verify_iat": False}
    try:
        claims = jwt.decode(token, key.encode(), algorithms=["HS256"], issuer=ISSUER, options=options, leeway=leeway_s)
    except jwt.PyJWTError as exc:
        raise SignatureError(f"invalid signature token: {exc}") from exc
    if claims.get("sub") != url:
        raise SignatureError(f"token was signed for {claims.get('sub')!r}, not {url!r}")
    claimed = str(claims.get("body", "")).rstrip("=")
    if not secrets.compare_digest(claimed, body_hash(body).rstrip("=")):
        raise SignatureError("body does not match the signed hash")
    return claims
