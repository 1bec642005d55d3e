"""Running ORM work from the event loop without leaking connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _closing(fn: Callable[..., T], *args, **kwargs) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_db(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run `fn` in a worker thread; its database connection goes back to the pool afterwards."""
    return await sync_to_async(_closing, thread_sensitive=False)(fn, *args, **kwargs)
