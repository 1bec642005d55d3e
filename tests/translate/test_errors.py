"""Upstream HTTP errors → the client's error, one row of the table per test."""

from __future__ import annotations

import orjson
import pytest

from api.translate.errors import upstream_connection_error, upstream_error_to_gateway, upstream_timeout

pytestmark = pytest.mark.smoke

WHERE = {
    "profile": "prod-key",
    "deployment": "llama-chicago",
    "region": "us-chicago-1",
    "compartment": "ocid1.compartment.oc1..aaa",
}


def convert(status, body, retry_after=None):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return upstream_error_to_gateway(status, raw, **WHERE, retry_after=retry_after)


def test_400_plain():
    e = convert(400, {"code": "InvalidParameter", "message": "Please pass in correct format of request."})
    assert (e.status, e.type, e.code, e.param) == (400, "invalid_request_error", None, None)
    assert e.message == "Please pass in correct format of request."


def test_400_with_json_inside_message():
    body = {
        "code": "400",
        "message": '{"code":"Client specified an invalid argument",'
        '"error":"Invalid request content: Invalid function schema."}',
    }
    e = convert(400, body)
    assert e.status == 400 and e.message == "Invalid request content: Invalid function schema."
    assert e.code is None


def test_400_openai_style_body():
    body = {
        "error": {
            "message": "Unsupported parameter: 'max_tokens'",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    }
    e = convert(400, body)
    assert (e.status, e.param, e.code) == (400, "max_tokens", "unsupported_parameter")
    assert e.message == "Unsupported parameter: 'max_tokens'"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("Invalid parameter: 'toolCallId' call_9 not found in 'toolCalls' of previous message", "messages"),
        ("'temperature' is not supported with this model", "temperature"),
        ("The parameter maxTokens must be less than 4000", "max_tokens"),
        ('"reasoningEffort" is not supported', "reasoning_effort"),
        ("something went wrong", None),
    ],
)
def test_400_names_the_field(message, param):
    assert convert(400, {"code": "400", "message": message}).param == param


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens, however you requested 9000 tokens",
        "prompt is too long: 200000 tokens > 128000 maximum",
        "Input length exceeds the maximum number of tokens allowed",
        '{"error": {"message": "too many tokens in the input"}}',
    ],
)
def test_400_context_length(message):
    assert convert(400, {"code": "400", "message": message}).code == "context_length_exceeded"


def test_400_non_json_body():
    e = convert(400, b"<html>bad request</html>")
    assert e.status == 400 and e.message == "<html>bad request</html>"


def test_401_is_never_passed_on():
    e = convert(
        401,
        {
            "code": "NotAuthenticated",
            "message": "The required information to complete authentication was not provided.",
        },
    )
    assert (e.status, e.type, e.code) == (502, "upstream_auth_error", "upstream_auth_error")
    assert "prod-key" in e.message


@pytest.mark.parametrize("status", [403, 404])
def test_not_authorized_or_not_found(status):
    e = convert(status, {"code": "404", "message": "Authorization failed or requested resource not found."})
    assert (e.status, e.type, e.code) == (502, "upstream_not_authorized", "upstream_not_authorized")
    for part in WHERE["deployment"], WHERE["region"], WHERE["compartment"]:
        assert part in e.message


def test_429_with_and_without_retry_after():
    e = convert(429, {"code": "TooManyRequests", "message": "slow down"}, retry_after="7")
    assert (e.status, e.type, e.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert e.headers == {"Retry-After": "7"}
    assert convert(429, b"").headers["Retry-After"] in ("1", "2")


@pytest.mark.parametrize(("status", "client"), [(500, 502), (502, 502), (504, 502), (503, 503), (409, 502)])
def test_5xx(status, client):
    e = convert(status, {"code": "InternalServerError", "message": "oops"})
    assert (e.status, e.type) == (client, "upstream_unavailable")
    assert "oops" in e.message


def test_connection_error_and_timeout():
    e = upstream_connection_error("connection refused")
    assert (e.status, e.type, e.code) == (502, "upstream_unavailable", "upstream_connection_error")
    assert "connection refused" in e.message
    t = upstream_timeout(30)
    assert (t.status, t.type, t.code) == (504, "timeout", "timeout")
    assert "30 s" in t.message
    assert t.envelope()["error"]["type"] == "timeout"
