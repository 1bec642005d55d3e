"""POST /v1/embeddings end to end: openai SDK / httpx → gateway → emulator embedText.

Batches over 96 inputs are split into concurrent calls (proven from the emulator ledger's timing),
reassembled in input order (proven against the emulator's own deterministic vectors), usage equal to
the ledger; base64 is little-endian float32 of the float result.
"""

import base64
import itertools
import math
import struct
import time

import httpx
import pytest

from oci_emulator.catalog import endpoint_ocid
from oci_emulator.generate import embed_text

V3 = "cohere.embed-english-v3.0"  # 1024 dimensions, 512 tokens per input, no settable dimensions
V4 = "cohere.embed-v4.0"  # 1536 by default; 256/512/1024/1536; images


def post(gateway, body, path="/embeddings"):
    return httpx.post(gateway.api_base + path, json=body, headers={"Authorization": f"Bearer {gateway.key}"},
                      timeout=60)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def embed_calls(emulator, since=0) -> list[dict]:
    return [e for e in emulator.ledger(since) if e["path"].endswith("/actions/embedText")]


def records_for(gateway, request_id: str, timeout: float = 10.0) -> list:
    """The usage records of one request (records of earlier tests' streams may land late in this one)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in gateway.usage_records(0, timeout=0) if r.request_id == request_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def close(a, b, tol=1e-6) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def texts(count: int) -> list[str]:
    # Every input has its own words, so every vector differs and a misplaced one is caught.
    return [f"passage {i} about topic{i} and theme{i * 7}" for i in range(count)]


@pytest.mark.smoke
def test_openai_sdk_default_base64_decodes_to_floats(gateway):
    client = gateway.openai()
    # The SDK asks for base64 when no encoding_format is given and decodes it itself.
    result = client.embeddings.create(model=V3, input=["red apples", "green pears"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 1024
    assert close(result.data[0].embedding, embed_text(V3, "red apples", 1024))
    assert close(result.data[1].embedding, embed_text(V3, "green pears", 1024))
    assert result.model == V3 and result.usage.prompt_tokens == result.usage.total_tokens == 4
    single = client.embeddings.create(model=V3, input="red apples", encoding_format="float")
    assert len(single.data) == 1 and close(single.data[0].embedding, embed_text(V3, "red apples", 1024))


def test_250_inputs_are_three_concurrent_calls_in_input_order(gateway):
    latency = 1.5  # sequential calls would take at least 3 × 1.5 s
    gateway.emulator.set_faults(latency_ms=latency * 1000, path="embedText")
    inputs = texts(250)
    started = time.monotonic()
    response = post(gateway, {"model": V3, "input": inputs, "encoding_format": "float"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-upstream-calls"] == "3"
    body = response.json()

    calls = embed_calls(gateway.emulator)
    assert len(calls) == math.ceil(250 / 96) == 3
    request_id = response.headers["x-request-id"]
    assert sorted(c["opcRequestId"] for c in calls) == [f"{request_id}-{i}" for i in range(3)]
    assert all(c["status"] == 200 for c in calls)
    # Concurrent: every call started before any finished (sequential calls would not overlap at all),
    # and the whole request took far less than three latencies.
    starts = [c["time"] for c in calls]
    ends = [c["time"] + c["durationMs"] / 1000 for c in calls]
    assert max(starts) < min(ends), (starts, ends)
    assert elapsed < 2 * latency, elapsed

    # Input order: each vector is exactly the emulator's vector of the input at that position.
    assert [d["index"] for d in body["data"]] == list(range(250))
    for i, item in enumerate(body["data"]):
        assert close(item["embedding"], embed_text(V3, inputs[i], 1024)), i
    assert len({tuple(d["embedding"][:8]) for d in body["data"]}) == 250

    billed = sum(c["usage"]["promptTokens"] for c in calls)
    assert body["usage"] == {"prompt_tokens": billed, "total_tokens": billed}
    (record,) = records_for(gateway, request_id)
    assert record.endpoint == "embeddings" and record.status == 200
    assert record.prompt_tokens == record.total_tokens == billed and record.usage_source == "upstream"
    first = next(c for c in calls if c["opcRequestId"] == f"{request_id}-0")
    assert record.upstream_request_id == first["responseRequestId"]


def test_base64_is_little_endian_float32_of_the_float_result(gateway):
    inputs = texts(100)
    floats = post(gateway, {"model": V3, "input": inputs, "encoding_format": "float"}).json()
    encoded = post(gateway, {"model": V3, "input": inputs, "encoding_format": "base64"}).json()
    assert floats["usage"] == encoded["usage"]
    for f, b in zip(floats["data"], encoded["data"], strict=True):
        raw = base64.b64decode(b["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        as_float32 = struct.unpack(f"<{len(f['embedding'])}f", struct.pack(f"<{len(f['embedding'])}f",
                                                                          *f["embedding"]))
        assert decoded == as_float32


def test_concurrency_cap_per_deployment(gateway, settings):
    settings.EMBEDDINGS_MAX_CONCURRENCY = 1
    gateway.emulator.set_faults(latency_ms=300, path="embedText")
    response = post(gateway, {"model": V3, "input": texts(200), "encoding_format": "float"})
    assert response.status_code == 200
    calls = sorted(embed_calls(gateway.emulator), key=lambda c: c["time"])
    assert len(calls) == 3
    for before, after in itertools.pairwise(calls):  # one at a time: each starts after the previous ended
        assert after["time"] >= before["time"] + before["durationMs"] / 1000 - 0.01


def test_dimensions_on_embed_v4_and_rejected_elsewhere(gateway):
    client = gateway.openai()
    result = client.embeddings.create(model=V4, input=["short text"], dimensions=256)
    assert len(result.data[0].embedding) == 256
    assert close(result.data[0].embedding, embed_text(V4, "short text", 256))
    default = client.embeddings.create(model=V4, input="short text")
    assert len(default.data[0].embedding) == 1536

    since = gateway.emulator.last_seq()
    response = post(gateway, {"model": V3, "input": "x", "dimensions": 256})
    assert response.status_code == 400 and error_of(response)["param"] == "dimensions"
    response = post(gateway, {"model": V4, "input": "x", "dimensions": 300})
    assert response.status_code == 400 and error_of(response)["param"] == "dimensions"
    assert "256" in error_of(response)["message"]
    assert embed_calls(gateway.emulator, since) == []  # refused before any upstream call


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": ""}, "input", "empty"),
        ({"input": []}, "input", "empty"),
        ({"input": [1, 2, 3]}, "input", "token arrays"),
        ({"input": [[1, 2], [3]]}, "input[0]", "token arrays"),
        ({"input": ["a", "b", "c", ""]}, "input[3]", "empty"),
        ({"input": ["a", 7]}, "input[1]", "token arrays"),
        ({"input": ["a", {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, "input[1]", "base64"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format", ""),
        ({"input": "a", "dimensions": 0}, "dimensions", ""),
        ({"input": "a", "truncate": "MIDDLE"}, "truncate", "END"),
        ({"input": "a", "input_type": "poem"}, "input_type", "search_query"),
        ({}, "input", "input"),
    ],
)
def test_bad_input_is_an_openai_400_naming_the_param(gateway, body, param, words):
    since = gateway.emulator.last_seq()
    response = post(gateway, {"model": V3, **body})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert words in error["message"]
    assert embed_calls(gateway.emulator, since) == []


def test_too_many_inputs_and_wrong_capability(gateway, settings):
    settings.EMBEDDINGS_MAX_INPUTS = 10
    response = post(gateway, {"model": V3, "input": texts(11)})
    assert response.status_code == 400 and error_of(response)["param"] == "input"
    response = post(gateway, {"model": "meta.llama-3.3-70b-instruct", "input": "x"})
    assert response.status_code == 400 and error_of(response)["code"] == "model_not_supported"


def test_truncate_defaults_to_end_and_none_names_the_input(gateway):
    long_text = " ".join(f"word{i}" for i in range(700))  # over the v3 limit of 512 tokens
    inputs = texts(100)
    inputs[98] = long_text  # second call, local position 2
    response = post(gateway, {"model": V3, "input": inputs, "encoding_format": "float"})
    assert response.status_code == 200, response.text  # deployment default END truncates
    assert response.json()["usage"]["prompt_tokens"] == sum(c["usage"]["promptTokens"]
                                                            for c in embed_calls(gateway.emulator))
    response = post(gateway, {"model": V3, "input": inputs, "truncate": "none"})
    error = error_of(response)
    assert response.status_code == 400 and error["param"] == "input[98]", error
    assert "input[98]" in error["message"] and "inputs[2]" not in error["message"]
    (record,) = records_for(gateway, response.headers["x-request-id"])
    assert record.status == 400


def test_a_failed_part_fails_the_request_with_the_upstream_error(gateway):
    inputs = texts(200)
    inputs[150] = "throttle me [[emulator: status=429 retry_after=7]]"
    response = post(gateway, {"model": V3, "input": inputs})
    error = error_of(response)
    assert response.status_code == 429 and error["type"] == "rate_limit_error", error
    assert response.headers["retry-after"] == "7"
    calls = embed_calls(gateway.emulator)
    assert 1 <= len(calls) <= 3 and any(c["status"] == 429 for c in calls)
    (record,) = records_for(gateway, response.headers["x-request-id"])
    assert record.status == 429 and record.endpoint == "embeddings"
    # The parts that did finish were billed by OCI, and are recorded.
    billed = sum(c["usage"]["promptTokens"] for c in calls if c["status"] == 200 and c.get("usage"))
    assert record.prompt_tokens == billed


def test_image_inputs_on_the_multimodal_model(gateway):
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake image bytes").decode()
    inputs = ["a caption", {"type": "image_url", "image_url": {"url": png}}, "another caption", png]
    response = post(gateway, {"model": V4, "input": inputs, "encoding_format": "float", "dimensions": 512})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert close(data[0]["embedding"], embed_text(V4, "a caption", 512))
    assert close(data[1]["embedding"], embed_text(V4, png, 512))
    assert close(data[2]["embedding"], embed_text(V4, "another caption", 512))
    assert close(data[3]["embedding"], embed_text(V4, png, 512))
    calls = embed_calls(gateway.emulator)
    assert len(calls) == 3  # the texts together, each image alone (OCI takes one image per call)
    assert response.json()["usage"]["prompt_tokens"] == sum(c["usage"]["promptTokens"] for c in calls)


def test_input_type_and_unprefixed_path(gateway):
    response = post(gateway, {"model": V3, "input": ["what is OCI?"], "input_type": "search_query"})
    assert response.status_code == 200, response.text
    response = httpx.post(gateway.base_url + "/embeddings", json={"model": V3, "input": "x"},
                          headers={"Authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 200 and response.json()["object"] == "list"


def test_dedicated_embedding_endpoint(gateway):
    from models_registry.services import models_import

    models_import(text=f"""
- region: us-chicago-1
  compartment_id: {gateway.emulator.compartment_id}
  models:
    dedicated:
      - name: embed-dedicated
        endpoint: {endpoint_ocid("emulator-embed-v4")}
        model_id: {V4}
""", source="tests-dedicated")
    client = gateway.openai()
    result = client.embeddings.create(model="embed-dedicated", input=texts(97), dimensions=1024)
    assert len(result.data) == 97 and len(result.data[96].embedding) == 1024
    assert close(result.data[96].embedding, embed_text(V4, texts(97)[96], 1024))
    assert len(embed_calls(gateway.emulator)) == 2
