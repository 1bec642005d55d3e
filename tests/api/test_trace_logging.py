"""GATEWAY_TRACE_UPSTREAM logs upstream heads and events, with every secret redacted."""

import logging


def test_trace_logs_heads_and_events_without_secrets(gateway, settings, caplog):
    settings.GATEWAY_TRACE_UPSTREAM = True
    with caplog.at_level(logging.INFO, logger="gateway.upstream.trace"):
        stream = gateway.openai().chat.completions.create(
            model="meta.llama-3.3-70b-instruct", messages=[{"role": "user", "content": "trace me"}], stream=True
        )
        list(stream)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "gateway.upstream.trace")
    assert "upstream request POST" in text and "/20231130/actions/chat" in text
    assert "upstream response 200" in text
    assert "upstream event" in text and "[DONE]" in text
    assert "[REDACTED]" in text  # the Authorization signature header
    assert 'signature="' not in text.lower().replace('signature="[redacted]', "")


def test_no_trace_by_default(gateway, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.upstream.trace"):
        gateway.openai().chat.completions.create(
            model="meta.llama-3.3-70b-instruct", messages=[{"role": "user", "content": "quiet"}]
        )
    assert not [r for r in caplog.records if r.name == "gateway.upstream.trace"]
