"""The incremental SSE decoder and encoder."""

from __future__ import annotations

import orjson
import pytest

from api.translate.sse import DONE, SSEDecoder, encode_sse, parse_event
from tests.translate.helpers import FIXTURES, decode_all

pytestmark = pytest.mark.smoke

FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.sse"))


def test_encode_sse_and_done():
    assert encode_sse({"a": "é"}) == b'data: {"a":"\xc3\xa9"}\n\n'
    assert DONE == b"data: [DONE]\n\n"


def test_standard_events_comments_and_fields():
    data = b': hello\nevent: x\nid: 3\nretry: 10\ndata: {"a":1}\n\ndata:{"b":2}\n\ndata: [DONE]\n\n'
    assert decode_all(data) == ['{"a":1}', '{"b":2}', "[DONE]"]


def test_multiline_payload_is_joined():
    data = b'data: {"a":\ndata: 1}\n\n'
    assert decode_all(data) == ['{"a":\n1}']


def test_crlf_and_cr_line_endings():
    assert decode_all(b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\rdata: 3\r\n\r\n') == ['{"a":1}', '{"b":2}', "3"]


def test_crlf_split_between_reads_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a":1}\r') == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == ['{"a":1}']


def test_single_newline_between_events_splits_on_complete_json():
    decoder = SSEDecoder()
    out = decoder.feed(b'data: {"a":1}\ndata: {"b":2}\n')
    assert out == ['{"a":1}', '{"b":2}']  # once lenient, a complete line is emitted without waiting
    assert decoder.lenient
    assert decoder.feed(b'data: {"c":\n') == []  # incomplete value: wait for more lines
    assert decoder.feed(b"data: 3}\n") == ['{"c":\n3}']
    assert decoder.feed(b"data: [DONE]\n") == ["[DONE]"]


def test_well_formed_stream_is_not_lenient():
    decoder = SSEDecoder()
    decoder.feed((FIXTURES / "generic_text.sse").read_bytes())
    assert not decoder.lenient


def test_flush_emits_unterminated_tail():
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a":1}') == []
    assert decoder.flush() == ['{"a":1}']
    assert decoder.flush() == []


def test_bom_and_utf8_split_inside_a_character():
    data = '\ufeffdata: {"t":"déjà"}\n\n'.encode()
    for k in range(len(data) + 1):
        assert decode_all(data, split=k) == ['{"t":"déjà"}']


def test_other_field_starting_with_data_is_ignored():
    assert decode_all(b"database: x\ndata\n\n") == [""]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_split_at_every_byte_offset(name):
    data = (FIXTURES / name).read_bytes()
    whole = decode_all(data)
    assert whole and all(p == "[DONE]" or isinstance(orjson.loads(p), dict) for p in whole)
    for k in range(len(data) + 1):
        assert decode_all(data, split=k) == whole, f"split at byte {k}"


def test_one_byte_at_a_time():
    data = (FIXTURES / "generic_newline_only.sse").read_bytes()
    decoder = SSEDecoder()
    out = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
    out.extend(decoder.flush())
    assert out == decode_all(data)
    assert len(out) == 6


def test_parse_event():
    assert parse_event("[DONE]") is None
    assert parse_event('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError):
        parse_event("[1]")
    with pytest.raises(ValueError):
        parse_event("{nope")
