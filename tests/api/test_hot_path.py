"""The `/v1` hot path with warm caches: no database query, limits and usage in Redis only."""

import httpx
import pytest
from django.conf import settings

from gateway_project import db
from tests.limits.helpers import chat_body, make_key
from usage import auth

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: without it limits live in the database")
def test_a_warm_governed_chat_call_runs_no_database_query(gateway, monkeypatch):
    _key, secret = make_key("hot-path", rpm_limit=10**6, tpm_limit=10**9, parallel_limit=1000, token_budget=10**9)
    headers = {"Authorization": f"Bearer {secret}"}

    def post(stream: bool = False) -> httpx.Response:
        response = httpx.post(gateway.api_base + "/chat/completions", json=chat_body("hi", stream=stream),
                              headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response

    post()  # warms the key and catalog caches and seeds the budget counter
    post(stream=True)
    calls = []
    real = db.run_db

    async def counting(fn, *args, **kwargs):
        if getattr(fn, "__name__", "") != "refresh_versions":  # the bus's periodic re-check, not the request
            calls.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(db, "run_db", counting)
    monkeypatch.setattr(auth, "run_db", counting)  # imported by name there
    for _ in range(3):
        assert post().headers["x-ratelimit-limit-requests"] == str(10**6)  # the limiter ran
        post(stream=True)
    assert calls == []  # every database access of /v1 goes through run_db: none on a warm call
