"""Fixtures for the dashboards: staff and plain clients, and usage written through the real writer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from usage.recorder import UsageEvent
from usage.writer import write_batch


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_signin_failures_carried_over():
    """Failed /me/ sign-ins are counted per address (usage/dashboards/signin_throttle.py): start at zero."""
    from usage.dashboards import signin_throttle

    for ip in ("127.0.0.1", "10.9.8.7"):
        signin_throttle.forget(ip)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-123")


@pytest.fixture
def staff_client(superuser):
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def plain_client(db):
    client = Client()
    client.force_login(get_user_model().objects.create_user("someone", "", "pw-for-tests-123"))
    return client


def event(**kw) -> UsageEvent:
    base = dict(request_id=uuid.uuid4().hex, endpoint="chat.completions", status=200, key_id=1, team_id=None,
                public_model="llama", region="us-chicago-1", prompt_tokens=10, completion_tokens=5,
                total_tokens=15, usage_source="upstream", cost_usd=Decimal("0.001"), latency_ms=20, ttft_ms=5,
                created_at=datetime.now(UTC) - timedelta(minutes=5))
    base.update(kw)
    if "total_tokens" not in kw:
        base["total_tokens"] = base["prompt_tokens"] + base["completion_tokens"]
    return UsageEvent(**base)


def write(*events: UsageEvent) -> int:
    return write_batch([e.to_row() for e in events])
