"""The client's address, honouring X-Forwarded-For only from TRUSTED_PROXIES."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def _trusted_networks() -> tuple:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in settings.TRUSTED_PROXIES)


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted_networks())


def client_ip(peer: str | None, headers: dict[str, str]) -> str | None:
    """Walk X-Forwarded-For from the right while the hop is a trusted proxy."""
    if not peer:
        return None
    if not _is_trusted(peer):
        return peer
    forwarded = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
    address = peer
    while forwarded and _is_trusted(address):
        address = forwarded.pop()
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return peer
    return address
