"""Secrets never reach a log line: the redaction filter on every handler."""

import logging

import pytest

from gateway_project.logging import RedactSecretsFilter, redact

pytestmark = pytest.mark.smoke

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz012345", "sk-abcdefghijklmnopqrstuvwxyz012345"),
        ("{'authorization': 'Signature keyId=\"a/b/c\",signature=\"QUJDREVGR0g=\"'}", "QUJDREVGR0g="),
        (f"key material {PEM} end", "MIIEpAIBAAKCAQEA"),
        ("x-api-key: hunter2hunter2", "hunter2hunter2"),
        ("a bare key sk-proj_0123456789abcdefghij in text", "sk-proj_0123456789abcdefghij"),
    ],
)
def test_redact_removes_secret(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[REDACTED]" in cleaned


def test_filter_redacts_arguments_and_exceptions():
    args = ("Bearer sk-0123456789abcdefghijklmn",)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "auth %s", args, None)
    try:
        raise ValueError("bad key sk-0123456789abcdefghijklmn")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactSecretsFilter().filter(record)
    assert "sk-0123456789" not in record.getMessage()
    assert "sk-0123456789" not in record.exc_text
