"""Legacy POST /v1/completions through the openai SDK: served by chat, answered as text_completion."""

import httpx
import openai
import pytest

MODEL = "meta.llama-3.3-70b-instruct"
FORMATS = ["meta.llama-3.3-70b-instruct", "cohere.command-r-08-2024", "cohere.command-a-03-2025"]


def chat_calls(emulator, since=0) -> list[dict]:
    return [e for e in emulator.ledger(since) if e["path"].endswith("/actions/chat")]


def records_for(gateway, request_id: str, timeout: float = 10.0) -> list:
    """The usage records of one request (records of earlier tests' streams may land late in this one)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in gateway.usage_records(0, timeout=0) if r.request_id == request_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.mark.smoke
@pytest.mark.parametrize("model", FORMATS)
def test_completion_through_openai_sdk(gateway, model):
    client = gateway.openai()
    raw = client.completions.with_raw_response.create(model=model, prompt="Say hello to the gateway")
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.model == model
    assert completion.id.startswith("cmpl-")
    (choice,) = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop" and choice.logprobs is None
    assert choice.text == "Emulated answer to: Say hello to the gateway"
    (call,) = chat_calls(gateway.emulator)
    request_id = raw.headers["x-request-id"]
    assert call["opcRequestId"] == request_id
    billed = call["usage"]
    assert completion.usage.prompt_tokens == billed["promptTokens"]
    assert completion.usage.completion_tokens == billed["completionTokens"]
    (record,) = records_for(gateway, request_id)
    assert record.endpoint == "completions" and record.status == 200
    assert record.total_tokens == billed["totalTokens"] and record.usage_source == "upstream"
    assert not record.streamed


@pytest.mark.parametrize("model", FORMATS)
def test_streamed_completion_through_openai_sdk(gateway, model):
    client = gateway.openai()
    raw = client.completions.with_raw_response.create(model=model, prompt="Stream something", stream=True,
                                                      stream_options={"include_usage": True})
    chunks = list(raw.parse())
    assert all(c.object == "text_completion" and c.model == model for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "Emulated answer to: Stream something"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    (call,) = chat_calls(gateway.emulator)
    assert chunks[-1].usage.total_tokens == call["usage"]["totalTokens"]
    (record,) = records_for(gateway, raw.headers["x-request-id"])
    assert record.streamed and record.endpoint == "completions"
    assert record.total_tokens == call["usage"]["totalTokens"] and record.usage_source == "upstream"


def test_stream_without_usage_ends_with_done(gateway):
    response = httpx.post(gateway.api_base + "/completions",
                          json={"model": MODEL, "prompt": "Hi there", "stream": True},
                          headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"usage"' not in response.text and "chat.completion" not in response.text


def test_max_tokens_default_is_the_deployments_not_16(gateway):
    client = gateway.openai()
    long = client.completions.create(model=MODEL, prompt="Tell a long story [[emulator: words=40]]")
    assert len(long.choices[0].text.split()) == 40 and long.choices[0].finish_reason == "stop"
    cut = client.completions.create(model=MODEL, prompt="Tell a long story [[emulator: words=40]]", max_tokens=5)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 5


def test_stop_and_sampling_parameters_are_forwarded(gateway):
    client = gateway.openai()
    completion = client.completions.create(model=MODEL, prompt="alpha beta gamma", stop=["beta"], temperature=0.2,
                                           top_p=0.9, seed=3, presence_penalty=0.1, frequency_penalty=0.1)
    assert completion.choices[0].text == "Emulated answer to: alpha "


def test_several_prompts_and_n(gateway):
    client = gateway.openai()
    raw = client.completions.with_raw_response.create(model=MODEL, prompt=["First prompt", "Second prompt"], n=2)
    completion = raw.parse()
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    assert [c.text for c in completion.choices] == [
        "Emulated answer to: First prompt", "Emulated answer to: First prompt (choice 2)",
        "Emulated answer to: Second prompt", "Emulated answer to: Second prompt (choice 2)",
    ]
    calls = chat_calls(gateway.emulator)
    request_id = raw.headers["x-request-id"]
    assert sorted(c["opcRequestId"] for c in calls) == [f"{request_id}-0", f"{request_id}-1"]
    billed = sum(c["usage"]["totalTokens"] for c in calls)
    assert completion.usage.total_tokens == billed
    records = records_for(gateway, request_id)
    assert len(records) == 1 and records[0].total_tokens == billed  # one record for the whole call
    assert records[0].upstream_request_id.startswith(f"{request_id}-0/")


def test_several_prompts_streamed(gateway):
    client = gateway.openai()
    raw = client.completions.with_raw_response.create(model=MODEL, prompt=["One", "Two"], stream=True,
                                                      stream_options={"include_usage": True})
    chunks = list(raw.parse())
    texts = {}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "Emulated answer to: One", 1: "Emulated answer to: Two"}
    assert sum(1 for c in chunks if not c.choices) == 1 and chunks[-1].usage is not None
    billed = sum(c["usage"]["totalTokens"] for c in chat_calls(gateway.emulator))
    assert chunks[-1].usage.total_tokens == billed
    records = records_for(gateway, raw.headers["x-request-id"])
    assert len(records) == 1 and records[0].total_tokens == billed and records[0].streamed


def test_echo_and_dropped_legacy_params(gateway):
    client = gateway.openai()
    raw = client.completions.with_raw_response.create(model=MODEL, prompt="Echo me", echo=True, suffix="!",
                                                      best_of=3, logprobs=2)
    assert raw.parse().choices[0].text == "Echo meEmulated answer to: Echo me"
    assert set(raw.headers["x-gateway-dropped-params"].split(",")) >= {"suffix", "best_of", "logprobs"}
    chunks = list(client.completions.create(model=MODEL, prompt="Echo me", echo=True, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Echo meEmulated answer to: Echo me"


def test_reject_mode_refuses_legacy_params(gateway):
    from models_registry.models import Deployment

    deployment = Deployment.objects.get(model_id=MODEL)
    deployment.unsupported_params = "reject"
    deployment.save()
    response = httpx.post(gateway.api_base + "/completions", json={"model": MODEL, "prompt": "x", "suffix": "!"},
                          headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "suffix"


def test_errors(gateway):
    client = gateway.openai()
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=[1, 2, 3])
    assert info.value.body["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="cohere.embed-v4.0", prompt="hi")
    assert info.value.body["code"] == "model_not_supported"
    for kwargs in ({"prompt": "hi [[emulator: status=429]]"},
                   {"prompt": "hi [[emulator: status=429]]", "stream": True},
                   {"prompt": ["fine", "hi [[emulator: status=429]]"]}):
        with pytest.raises(openai.RateLimitError) as info:
            client.completions.create(model=MODEL, **kwargs)
        (record,) = records_for(gateway, info.value.response.headers["x-request-id"])
        assert record.status == 429 and record.endpoint == "completions"


def test_client_leaving_a_stream_is_recorded_once(gateway):
    body = {"model": MODEL, "prompt": "Keep going [[emulator: words=60 interval_ms=50]]", "stream": True}
    with httpx.stream("POST", gateway.api_base + "/completions", json=body,
                      headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        seen = [line for _, line in zip(range(6), lines, strict=False) if line.startswith("data: ")]
        assert seen and '"text_completion"' in seen[0]
    (record,) = records_for(gateway, request_id)
    assert record.status == 499 and record.streamed and record.endpoint == "completions"
    assert record.completion_tokens > 0  # what was relayed is billed (a lower bound)
