"""OCI HTTP signature verification: good requests pass, tampered ones get 401 NotAuthenticated."""

from __future__ import annotations

import email.utils
import time

import oci
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from oci_emulator.credentials import mint_session_token
from oci_emulator.testing import chat_body

pytestmark = pytest.mark.provokes_rejection

M = oci.generative_ai_inference.models
CHAT = "/20231130/actions/chat"


def _body(emu):
    return chat_body("meta.llama-3.3-70b-instruct", "hi", compartment_id=emu.compartment_id)


def _send(emu, mutate, body=None, headers=None):
    """Sign like the SDK, let ``mutate(prepared)`` tamper with the request, send it."""
    import orjson

    data = orjson.dumps(body if body is not None else _body(emu))
    hdrs = {"content-type": "application/json", "accept": "application/json"}
    hdrs.update(headers or {})
    prepared = requests.Request("POST", emu.base_url + CHAT, headers=hdrs, data=data).prepare()
    emu.signer()(prepared)
    mutate(prepared)
    with requests.Session() as s:
        return s.send(prepared, timeout=10)


def _assert_401(resp, emu, verdict):
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/json"
    err = resp.json()
    assert err["code"] == "NotAuthenticated"
    assert emu.ledger()[-1]["signature"] == verdict


def test_good_signature(emulator):
    resp = _send(emulator, lambda p: None, headers={"opc-request-id": "CLIENTID"})
    assert resp.status_code == 200
    rid = resp.headers["opc-request-id"].split("/")
    assert rid[0] == "CLIENTID" and len(rid) == 3 and all(len(x) == 32 for x in rid[1:])
    entry = emulator.ledger()[-1]
    assert entry["signature"] == "ok" and entry["opcRequestId"] == "CLIENTID"


def test_tampered_signature(emulator):
    def tamper(p):
        auth = p.headers["authorization"]
        i = auth.index('signature="') + len('signature="') + 5
        p.headers["authorization"] = auth[:i] + ("A" if auth[i] != "A" else "B") + auth[i + 1:]

    _assert_401(_send(emulator, tamper), emulator, "bad_signature")


def test_body_changed_after_signing(emulator):
    def swap(p):
        p.body = p.body.replace(b'"hi"', b'"ho"')

    _assert_401(_send(emulator, swap), emulator, "bad_body_hash")


def test_path_changed_after_signing(emulator):
    def repath(p):
        p.url = p.url.replace("/actions/chat", "/actions/embedText")

    _assert_401(_send(emulator, repath), emulator, "bad_signature")


def test_stale_date(emulator):
    stale = email.utils.formatdate(time.time() - 600, usegmt=True)
    _assert_401(_send(emulator, lambda p: None, headers={"date": stale}), emulator, "clock_skew")
    fresh = email.utils.formatdate(time.time() - 120, usegmt=True)
    assert _send(emulator, lambda p: None, headers={"date": fresh}).status_code == 200


def test_missing_and_unknown_key(emulator):
    def strip(p):
        del p.headers["authorization"]

    _assert_401(_send(emulator, strip), emulator, "missing")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = oci.signer.Signer("ocid1.tenancy.oc1..x", "ocid1.user.oc1..y", "aa:bb", None,
                               private_key_content=other.private_bytes(
                                   serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode())
    resp = emulator.signed_request("POST", CHAT, _body(emulator), signer=signer)
    _assert_401(resp, emulator, "unknown_key")


def test_sdk_sees_not_authenticated(emulator, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "other.pem"
    key_file.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    cfg = dict(emulator.oci_config())
    cfg["key_file"] = str(key_file)  # right keyId, wrong key
    client = oci.generative_ai_inference.GenerativeAiInferenceClient(
        cfg, service_endpoint=emulator.base_url, retry_strategy=oci.retry.NoneRetryStrategy(),
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    details = M.ChatDetails(compartment_id=emulator.compartment_id,
                            serving_mode=M.OnDemandServingMode(model_id="meta.llama-3.3-70b-instruct"),
                            chat_request=M.GenericChatRequest(messages=[M.UserMessage(
                                content=[M.TextContent(text="hi")])]))
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details)
    assert exc.value.status == 401 and exc.value.code == "NotAuthenticated"
    assert exc.value.request_id.count("/") == 2


def test_session_token_signer(emulator):
    signer = emulator.session_signer()
    client = oci.generative_ai_inference.GenerativeAiInferenceClient(
        {"region": "us-chicago-1"}, signer=signer, service_endpoint=emulator.base_url,
        retry_strategy=oci.retry.NoneRetryStrategy(),
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    details = M.ChatDetails(compartment_id=emulator.compartment_id,
                            serving_mode=M.OnDemandServingMode(model_id="meta.llama-3.3-70b-instruct"),
                            chat_request=M.GenericChatRequest(messages=[M.UserMessage(
                                content=[M.TextContent(text="hi")])]))
    assert client.chat(details).status == 200
    assert emulator.ledger()[-1]["signature"] == "ok"
    # a token minted by someone else (not the emulator's issuer) is refused
    session = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rogue = mint_session_token(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                               session.public_key(), "ocid1.tenancy.oc1..t", "ocid1.user.oc1..u")
    rogue_signer = oci.auth.signers.SecurityTokenSigner(rogue, session)
    resp = emulator.signed_request("POST", CHAT, _body(emulator), signer=rogue_signer)
    _assert_401(resp, emulator, "bad_token")


def test_get_requests_are_verified(emulator):
    path = f"/20231130/models?compartmentId={emulator.compartment_id}&limit=2"
    assert emulator.signed_request("GET", path).status_code == 200
    resp = requests.get(emulator.base_url + path, timeout=10)
    _assert_401(resp, emulator, "missing")
