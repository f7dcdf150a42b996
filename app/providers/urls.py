"""Webhook URL safety (SSRF): https only, and never an address inside our own network.

A URL is checked when a provider is registered and again before every send, because DNS can
change under a name. Every address the name resolves to must be global: private, loopback,
link-local (which holds the cloud metadata address 169.254.169.254), shared, reserved,
multicast and unspecified addresses are refused, also inside IPv4-mapped IPv6 addresses.
`resolve_target` returns the checked addresses so the sender connects to one of *them*, not to
whatever a second lookup answers (DNS rebinding).

`allow_private` (setting `WEBHOOK_ALLOW_PRIVATE_URLS`, refused in production) accepts plain
http and local addresses, for development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.errors import BadRequest

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class UnsafeWebhookURL(BadRequest):
    """The URL is not one we may send patient data to."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    addresses: tuple[str, ...]


def check_syntax(url: str, *, allow_private: bool) -> str:
    """The URL's host, if the URL is absolute http(s) with a host (https unless `allow_private`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeWebhookURL(f"webhook URL {url!r} must be an absolute https:// URL")
    if parts.scheme != "https" and not allow_private:
        raise UnsafeWebhookURL(f"webhook URL {url!r} must use https")
    if parts.username or parts.password:
        raise UnsafeWebhookURL("webhook URL must not carry credentials; the payload is signed instead")
    if parts.hostname.lower().rstrip(".") in METADATA_HOSTS and not allow_private:
        raise UnsafeWebhookURL(f"webhook URL host {parts.hostname!r} is a cloud metadata service")
    return parts.hostname


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Check `url` and resolve its host; every address must be public unless `allow_private`."""
    host = check_syntax(url, allow_private=allow_private)
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeWebhookURL(f"webhook URL host {host!r} does not resolve ({exc.strerror})") from exc
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise UnsafeWebhookURL(
                f"webhook URL host {host!r} resolves to {blocked[0]}, a private, loopback, link-local or "
                "metadata address; use a public https endpoint"
            )
    return Target(host, addresses)
