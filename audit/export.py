"""Audit entries as CSV, streamed so that a large export does not sit in memory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone

from .models import AuditEntry

COLUMNS = ("created_at", "actor", "channel", "action", "object_type", "object_id", "object_repr", "changes", "note")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    # A cell starting with = + - @ is a formula to spreadsheet programs (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_csv_rows(entries: Iterable[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for entry in entries:
        yield writer.writerow([
            entry.created_at.isoformat(), _cell(entry.actor), entry.channel, entry.action, entry.object_type,
            _cell(entry.object_id), _cell(entry.object_repr), _cell(entry.changes), _cell(entry.note),
        ])


def audit_csv_response(queryset) -> StreamingHttpResponse:
    filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
    response = StreamingHttpResponse(audit_csv_rows(queryset.iterator(chunk_size=2000)), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
