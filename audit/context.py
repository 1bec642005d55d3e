"""Who is making the current change: "admin:<username>", "api:<username>", "command:<name>" or "system".

The admin and the management API set it around each request (`acting_as`); management commands are
recognised without any help from them (see `_running_command`), so a command written tomorrow is
attributed too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    channel: str  # AuditEntry.Channel value
    name: str = ""
    user_id: int | None = None

    @property
    def label(self) -> str:
        return f"{self.channel}:{self.name}" if self.name else self.channel

    @classmethod
    def for_user(cls, channel: str, user) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(channel, "anonymous")
        return cls(channel, user.get_username(), user.pk)


SYSTEM = Actor("system")

# An Actor, or a callable returning one: DRF authenticates lazily, so the API resolves its user
# only when a change is actually recorded.
_current: ContextVar[Actor | Callable[[], Actor] | None] = ContextVar("audit_actor", default=None)


@contextmanager
def acting_as(actor: Actor | Callable[[], Actor]) -> Iterator[None]:
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def command_actor(name: str) -> Actor:
    return Actor("command", name)


def current_actor() -> Actor:
    actor = _current.get()
    if callable(actor):
        actor = actor()
    if actor is not None:
        return actor
    return _running_command() or SYSTEM


def _running_command() -> Actor | None:
    """The management command on this thread's stack, if any (`manage.py x` or `call_command("x")`).

    Walking the stack costs microseconds and runs only when a change is recorded, which is rare.
    """
    from django.core.management.base import BaseCommand

    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, BaseCommand):
            return command_actor(type(owner).__module__.rsplit(".", 1)[-1])
        frame = frame.f_back
    return None
