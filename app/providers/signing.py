"""Standard Webhooks signatures (the `standardwebhooks` library) and provider secrets.

Every delivery carries `webhook-id` (the delivery's ID: the same on every attempt and replay, so
a receiver can deduplicate), `webhook-timestamp` and `webhook-signature`. While a rotated-out
secret is in its grace period the signature header holds two signatures, new first
(`v1,<new> v1,<old>`), as the spec allows: receivers verifying with either secret accept it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh `whsec_` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(
    delivery_id: str, body: str, signing_secrets: Sequence[str | bytes], now: datetime
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed with each secret (UTC `now`).

    A secret given as text is base64 (`whsec_` prefix optional); as bytes, it is the key itself."""
    timestamp = now.astimezone(UTC)
    signatures = [Webhook(secret).sign(delivery_id, timestamp, body) for secret in signing_secrets]
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
