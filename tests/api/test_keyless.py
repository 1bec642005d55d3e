"""Keyless clients: off by default; mapped onto a named key from trusted ranges only."""

import httpx

from usage.keys import api_key_create


def models(gateway, **headers):
    return httpx.get(gateway.api_base + "/models", headers=headers, timeout=10)


def test_keyless_refused_by_default(gateway):
    assert models(gateway).status_code == 401


def test_keyless_from_allowed_range_counts_as_the_named_key(gateway, settings):
    api_key_create(name="open-webui-shared", allowed_models=["xai.grok-4"])
    settings.GATEWAY_ANONYMOUS_KEY = "open-webui-shared"
    settings.GATEWAY_ANONYMOUS_CIDRS = ["127.0.0.0/8"]
    response = models(gateway)
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["xai.grok-4"]  # the named key's allowlist applies
    chat = httpx.post(gateway.api_base + "/chat/completions", timeout=30,
                      json={"model": "xai.grok-4", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200
    record = gateway.usage_records(1)[-1]
    assert record.key.name == "open-webui-shared"
    # A wrong key is still a wrong key, even from the trusted range.
    assert models(gateway, Authorization="Bearer sk-wrong-wrong-wrong-wrong").status_code == 401


def test_keyless_from_other_range_is_refused(gateway, settings):
    api_key_create(name="shared")
    settings.GATEWAY_ANONYMOUS_KEY = "shared"
    settings.GATEWAY_ANONYMOUS_CIDRS = ["10.0.0.0/8"]
    assert models(gateway).status_code == 401
