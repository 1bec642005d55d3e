"""Failed sign-ins on /me/, counted per client address: past the limit, the form answers 429 for a while.

Keys have far too much entropy to guess, but a form that answers every guess invites scanners and fills
logs. The counts live in Django's cache: Redis when REDIS_URL is set (shared by every process), else
the process's memory.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

from api.client_ip import client_ip


def address(request) -> str:
    peer = request.META.get("REMOTE_ADDR")
    return client_ip(peer, {"x-forwarded-for": request.META.get("HTTP_X_FORWARDED_FOR", "")}) or "unknown"


def _key(ip: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}me-signin-failures:{ip}"  # the prefix: one per installation


def blocked(ip: str) -> bool:
    return (cache.get(_key(ip)) or 0) >= settings.ME_SIGNIN_MAX_FAILURES


def record_failure(ip: str) -> None:
    key = _key(ip)
    cache.add(key, 0, timeout=settings.ME_SIGNIN_WINDOW_SECONDS)  # the window starts at the first failure
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.ME_SIGNIN_WINDOW_SECONDS)


def forget(ip: str) -> None:
    cache.delete(_key(ip))
