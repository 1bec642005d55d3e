"""Every client error and every row of the upstream error table, injected from the emulator."""

import httpx
import openai
import pytest

from oci_emulator.credentials import generate_credentials

MODEL = "meta.llama-3.3-70b-instruct"


def post(gateway, body, *, key=None, raw=None, headers=None):
    hdrs = {"Authorization": f"Bearer {key or gateway.key}", "content-type": "application/json", **(headers or {})}
    return httpx.post(gateway.api_base + "/chat/completions", content=raw if raw is not None else None,
                      json=None if raw is not None else body, headers=hdrs, timeout=30)


def envelope(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def chat(content, model=MODEL):
    return {"model": model, "messages": [{"role": "user", "content": content}]}


@pytest.mark.smoke
def test_missing_and_bad_key_are_401(gateway):
    response = httpx.post(gateway.api_base + "/chat/completions", json=chat("hi"))
    assert response.status_code == 401 and envelope(response)["code"] == "missing_api_key"
    response = post(gateway, chat("hi"), key="sk-not-a-real-key-000000000000")
    assert response.status_code == 401 and envelope(response)["code"] == "invalid_api_key"
    assert "sk-not-a-real-key" not in response.text  # the secret is not echoed back
    response = httpx.post(gateway.api_base + "/chat/completions", json=chat("hi"), headers={"x-api-key": gateway.key})
    assert response.status_code == 200


def test_bad_json_missing_field_and_unknown_model(gateway):
    response = post(gateway, None, raw=b"{not json")
    assert response.status_code == 400 and envelope(response)["type"] == "invalid_request_error"
    response = post(gateway, {"model": MODEL})
    assert response.status_code == 400 and envelope(response)["param"] == "messages"
    response = post(gateway, {"model": MODEL, "messages": [{"role": "user", "content": 42}]})
    error = envelope(response)
    assert response.status_code == 400 and error["param"].startswith("messages[0]")
    response = post(gateway, chat("hi", model="no-such-model"))
    error = envelope(response)
    assert response.status_code == 404 and error["code"] == "model_not_found" and error["param"] == "model"


def test_body_over_the_limit_is_413(gateway, settings):
    settings.CHAT_MAX_BYTES = 1000
    response = post(gateway, chat("x" * 2000))
    assert response.status_code == 413 and envelope(response)["code"] == "request_too_large"


def test_method_not_allowed_and_unprefixed_paths(gateway):
    response = httpx.get(gateway.api_base + "/chat/completions", headers={"Authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 405 and envelope(response)["code"] == "method_not_allowed"
    response = httpx.get(gateway.base_url + "/models", headers={"Authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 200 and response.json()["object"] == "list"


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [(400, 400, "invalid_request_error"), (403, 502, "upstream_not_authorized"), (429, 429, "rate_limit_error"),
     (500, 502, "upstream_unavailable"), (503, 503, "upstream_unavailable")],
)
def test_upstream_status_is_mapped(gateway, status, client_status, error_type):
    response = post(gateway, chat(f"fail please [[emulator: status={status}]]"))
    assert response.status_code == client_status, response.text
    error = envelope(response)
    assert error["type"] == error_type
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1
    records = gateway.usage_records(1)
    assert records[-1].status == client_status and records[-1].error_type == error_type


def test_upstream_404_names_deployment_region_and_compartment(gateway):
    from models_registry.models import Deployment

    Deployment.objects.filter(model_id=MODEL).update(compartment_id="ocid1.compartment.oc1..elsewhere")
    from models_registry import bus

    bus.bump("catalog")
    response = post(gateway, chat("hi"))
    assert response.status_code == 502
    error = envelope(response)
    assert error["type"] == "upstream_not_authorized"
    assert "us-chicago-1" in error["message"] and "ocid1.compartment.oc1..elsewhere" in error["message"]


@pytest.mark.provokes_rejection
def test_upstream_401_is_502_naming_the_profile_never_401(gateway, settings, tmp_path):
    from api.upstream.signing import forget_signers

    stranger = generate_credentials(str(tmp_path / "stranger"))  # a key the emulator does not know
    settings.OCI_CONFIG_FILE = stranger.config_file
    forget_signers()
    response = post(gateway, chat("hi"))
    assert response.status_code == 502
    error = envelope(response)
    assert error["type"] == "upstream_auth_error" and "environment" in error["message"]


def test_connection_error_is_upstream_unavailable(gateway, settings):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.OCI_GENAI_ENDPOINT = f"http://127.0.0.1:{port}"  # nothing listens there
    from models_registry import bus

    bus.bump("catalog")
    response = post(gateway, chat("hi"))
    assert response.status_code in (502, 503)
    assert envelope(response)["type"] == "upstream_unavailable"


def test_deadline_is_504_timeout(gateway, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.5
    response = post(gateway, chat("wait [[emulator: hang]]"))
    assert response.status_code == 504
    assert envelope(response)["type"] == "timeout"


def test_openai_sdk_raises_typed_errors(gateway):
    client = gateway.openai()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "[[emulator: status=429]]"}])
    with pytest.raises(openai.AuthenticationError):
        gateway.openai(api_key="sk-wrong-wrong-wrong-wrong-wrong").models.list()
