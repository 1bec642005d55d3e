"""Log redaction and JSON formatting.

Secrets must never reach a log line: client API keys, Authorization values, OCI signatures and PEM
blocks are replaced by `[REDACTED]` before any handler formats the record.
"""

from __future__ import annotations

import logging
import re

import orjson

SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer|signature|basic)?\s*[^'\"\n,}]+"),
    re.compile(r"(?i)(signature=\")[^\"]+"),
    re.compile(r"(?i)((?:x-)?api-key['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
]


def redact(text: str) -> str:
    for pattern in SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
        else:
            text = pattern.sub("[REDACTED]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["exc"] = record.exc_text
        for extra in ("request_id", "status", "model", "duration_ms"):
            if hasattr(record, extra):
                payload[extra] = getattr(record, extra)
        return orjson.dumps(payload).decode()


_installed = False


def install_redaction() -> None:
    """Redact every log record at creation, so no handler (nor a test's capture) ever sees a secret."""
    global _installed
    if _installed:
        return
    _installed = True
    base_factory = logging.getLogRecordFactory()
    redactor = RedactSecretsFilter()

    def factory(*args, **kwargs):
        record = base_factory(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)
