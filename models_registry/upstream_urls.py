"""Rules for upstream URLs an operator types in (deployment URLs, endpoint overrides).

They must be https (unless ALLOW_HTTP_UPSTREAMS is set, for labs and the emulator), and never a
link-local address: 169.254.0.0/16 is where cloud instance metadata and its credentials live.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


def validate_upstream_url(url: str) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError(f"{url!r} is not an absolute URL; give one such as https://host/path.")
    if parts.scheme == "http" and not settings.ALLOW_HTTP_UPSTREAMS:
        raise ValidationError(
            "Upstream URLs must use https. For a lab or the local emulator, set ALLOW_HTTP_UPSTREAMS=true."
        )
    host = parts.hostname.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host.lower() in ("metadata", "metadata.google.internal"):
            raise ValidationError("Instance-metadata hosts are not allowed as upstreams.") from None
        return
    if any(address in network for network in _LINK_LOCAL):
        raise ValidationError(
            f"{host} is a link-local address (instance metadata lives there) and is never allowed as an upstream."
        )
