"""Server-sent events: an incremental decoder for upstream streams and the encoder for client streams.

`SSEDecoder.feed(bytes)` returns the data payloads of the events completed by those bytes, whatever the
read boundaries are. It follows the SSE rules (lines end in `\\n`, `\\r\\n` or `\\r`; `data:` lines of one
event are joined with `\\n`; a blank line ends the event; `:` lines are comments; other fields are
ignored) with one deliberate deviation for OCI:

OCI sometimes separates two events with a single `\\n` instead of a blank line. Plain SSE would join the
two `data:` lines into `{...}\\n{...}`, which is not JSON (the `oci` SDK's own `sseclient` breaks on it).
So when a second `data:` line arrives while the event being assembled already holds a *complete* JSON
value (or `[DONE]`), the held value is emitted as its own event and the new line starts the next one. A
genuinely multi-line payload (pretty-printed JSON) is still joined, because its first line alone is not a
complete value. Once a stream has shown this habit the decoder switches to "lenient" mode and emits every
`data:` line that holds a complete value at once, without waiting for a blank line that may never come:
otherwise each event would sit in the buffer until the next one arrived. Well-formed streams never pay
for the JSON check: it only runs when two `data:` lines meet without a blank line between them.
"""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"
DONE_PAYLOAD = "[DONE]"

_BOM = b"\xef\xbb\xbf"


def encode_sse(obj: object) -> bytes:
    """One SSE event carrying `obj` as JSON."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _is_complete(payload: str) -> bool:
    if payload.strip() == DONE_PAYLOAD:
        return True
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


class SSEDecoder:
    """Incremental SSE decoder: `feed()` bytes as they arrive, `flush()` at end of stream."""

    __slots__ = ("_buf", "_data", "_lenient", "_first_line")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes after the last complete line
        self._data: list[str] = []  # data lines of the event being assembled
        self._lenient = False  # the stream separates events with a single newline
        self._first_line = True

    @property
    def lenient(self) -> bool:
        """True once the stream was seen separating events by a single newline."""
        return self._lenient

    def feed(self, chunk: bytes) -> list[str]:
        if not chunk:
            return []
        buf = self._buf
        buf += chunk
        if b"\n" not in chunk and b"\r" not in chunk:
            return []
        # A trailing "\r" may be the first half of a "\r\n" split across reads: keep it for the next feed.
        search_end = len(buf) - 1 if buf[-1] == 0x0D else len(buf)
        end = max(buf.rfind(b"\n", 0, search_end), buf.rfind(b"\r", 0, search_end)) + 1
        if end == 0:
            return []
        complete = bytes(buf[:end])
        del buf[:end]
        out: list[str] = []
        self._lines(complete, out)
        return out

    def flush(self) -> list[str]:
        """End of stream: the unterminated last line and the pending event count as complete."""
        out: list[str] = []
        if self._buf:
            tail = bytes(self._buf)
            self._buf.clear()
            self._lines(tail + b"\n", out)
        self._dispatch(out)
        return out

    def _lines(self, complete: bytes, out: list[str]) -> None:
        if b"\r" in complete:
            complete = complete.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = complete.split(b"\n")
        lines.pop()  # `complete` ends with a terminator: the last piece is empty
        for line in lines:
            if self._first_line:
                self._first_line = False
                if line.startswith(_BOM):
                    line = line[3:]
            if not line:
                self._dispatch(out)
            elif line.startswith(b"data"):
                rest = line[4:]
                if not rest:
                    self._on_data("", out)
                elif rest[0] == 0x3A:  # "data:"
                    value = rest[2:] if rest[1:2] == b" " else rest[1:]
                    self._on_data(value.decode("utf-8", "replace"), out)
                # "dataX: ..." is another field name: ignored like event:, id:, retry:.
            # Comments (":...") and other fields carry nothing the gateway uses.

    def _on_data(self, value: str, out: list[str]) -> None:
        data = self._data
        if data:
            held = "\n".join(data)
            # OCI sometimes ends an event with a single newline: a complete value already held is one event.
            if _is_complete(held):
                out.append(held)
                data.clear()
                self._lenient = True
        data.append(value)
        if self._lenient:
            payload = value if len(data) == 1 else "\n".join(data)
            if _is_complete(payload):
                out.append(payload)
                data.clear()

    def _dispatch(self, out: list[str]) -> None:
        if self._data:
            out.append(self._data[0] if len(self._data) == 1 else "\n".join(self._data))
            self._data.clear()


def parse_event(payload: str) -> dict | None:
    """The JSON object of one event payload, or `None` for the `[DONE]` sentinel.

    Raises `ValueError` when the payload is not a JSON object: an upstream that sends garbage is an
    upstream error for the caller to report, not something to skip silently.
    """
    if payload.strip() == DONE_PAYLOAD:
        return None
    value = orjson.loads(payload)
    if not isinstance(value, dict):
        raise ValueError(f"stream event is not a JSON object: {payload[:80]!r}")
    return value
