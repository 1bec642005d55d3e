"""docs/compatibility.md: one row per openai SDK chat parameter, and every cell true of the translator."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import orjson
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from api.errors import GatewayError
from api.schemas import parse_chat_request
from api.translate import ChatOptions, translate_chat_request
from api.translate.common import ADVISORY_PARAMS
from tests.translate.helpers import WEATHER_TOOL
from tests.translate.sdk_check import assert_sdk_valid

pytestmark = pytest.mark.smoke

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"

# The deployment each column describes.
FAMILIES = {
    "GENERIC·Meta": ChatOptions(model_id="meta.llama-3.3-70b-instruct"),
    "GENERIC·xAI": ChatOptions(model_id="xai.grok-4"),
    "GENERIC·Google": ChatOptions(model_id="google.gemini-2.5-flash", supports_reasoning=True),
    "GENERIC·OpenAI": ChatOptions(model_id="openai.gpt-5", supports_reasoning=True),
    "COHERE": ChatOptions(model_id="cohere.command-r-08-2024", api_format="COHERE"),
    "COHEREV2": ChatOptions(model_id="cohere.command-a-03-2025", api_format="COHEREV2"),
    "OpenAI passthrough": ChatOptions(model_id="odsc-llm", api_format="OPENAI"),
}

# parameter -> (companions the value needs, the value)
SAMPLES = {
    "messages": ({}, [{"role": "user", "content": "Hi"}]),
    "model": ({}, "public-model"),
    "audio": ({}, {"voice": "alloy", "format": "mp3"}),
    "frequency_penalty": ({}, 0.5),
    "function_call": ({"functions": [WEATHER_TOOL["function"]]}, {"name": "get_weather"}),
    "functions": ({}, [WEATHER_TOOL["function"]]),
    "logit_bias": ({}, {"50256": -100}),
    "logprobs": ({}, True),
    "max_completion_tokens": ({}, 100),
    "max_tokens": ({}, 100),
    "metadata": ({}, {"k": "v"}),
    "modalities": ({}, ["text", "audio"]),
    "moderation": ({}, {"model": "omni-moderation-latest"}),
    "n": ({}, 2),
    "parallel_tool_calls": ({"tools": [WEATHER_TOOL]}, False),
    "prediction": ({}, {"type": "content", "content": "draft"}),
    "presence_penalty": ({}, 0.5),
    "prompt_cache_key": ({}, "k"),
    "prompt_cache_options": ({}, {"mode": "implicit"}),
    "prompt_cache_retention": ({}, "24h"),
    "reasoning_effort": ({}, "low"),
    "response_format": (
        {},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    ),
    "safety_identifier": ({}, "user-1"),
    "seed": ({}, 1),
    "service_tier": ({}, "priority"),
    "stop": ({}, "END"),
    "store": ({}, True),
    "stream": ({}, True),
    "stream_options": ({"stream": True}, {"include_usage": True}),
    "temperature": ({}, 0.3),
    "tool_choice": ({"tools": [WEATHER_TOOL]}, "required"),
    "tools": ({}, [WEATHER_TOOL]),
    "top_logprobs": ({"logprobs": True}, 3),
    "top_p": ({}, 0.9),
    "user": ({}, "user-1"),
    "verbosity": ({}, "low"),
    "web_search_options": ({}, {"search_context_size": "low"}),
}

STATUSES = {"mapped", "dropped", "rejected", "gateway"}


def _table() -> tuple[list[str], dict[str, list[str]]]:
    header: list[str] = []
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("| Parameter |"):
            header = [c.strip() for c in line.strip("|").split("|")][1:]
        elif header and line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
        elif header and rows and not line.startswith("|"):
            break
    return header, rows


HEADER, ROWS = _table()


def _status(cell: str) -> str:
    return re.match(r"[a-z]+", cell).group(0)


def test_every_sdk_parameter_has_a_row():
    missing = set(CompletionCreateParamsBase.__annotations__) - set(ROWS)
    assert not missing, f"docs/compatibility.md has no row for: {sorted(missing)}"
    assert set(SAMPLES) >= set(ROWS), "every documented parameter needs a sample value in this test"


def test_columns_and_cells_are_well_formed():
    assert list(FAMILIES) == HEADER
    for name, cells in ROWS.items():
        assert len(cells) == len(HEADER), name
        for cell in cells:
            assert _status(cell) in STATUSES, f"{name}: {cell!r}"
            if _status(cell) == "dropped" and "†" in cell:
                assert name in ADVISORY_PARAMS, f"{name} is marked advisory but the translator can reject it"


def _translate(opts: ChatOptions, body: dict):
    return translate_chat_request(parse_chat_request(orjson.dumps(body)), opts)


CASES = [(name, family) for name in ROWS for family in FAMILIES]


@pytest.mark.parametrize(("name", "family"), CASES)
def test_cell_matches_the_translator(name, family):
    cell = ROWS[name][HEADER.index(family)]
    status = _status(cell)
    opts = FAMILIES[family]
    companions, value = SAMPLES[name]
    baseline = {"model": "public-model", "messages": [{"role": "user", "content": "Hi"}], **companions}
    body = {**baseline, name: value}
    if status == "rejected":
        with pytest.raises(GatewayError):
            _translate(opts, body)
        return
    out = _translate(opts, body)
    if opts.api_format != "OPENAI":
        assert_sdk_valid(out.chat_request)  # whatever a parameter becomes, OCI's SDK must accept it
    if status == "dropped":
        assert name in out.dropped, f"{family}: {name} documented as dropped but was not"
        reject = dataclasses.replace(opts, unsupported_params="reject")
        if name in ADVISORY_PARAMS:
            assert name in _translate(reject, body).dropped
        else:
            with pytest.raises(GatewayError) as e:
                _translate(reject, body)
            assert e.value.status == 400 and e.value.param in {name, *companions}
        return
    assert name not in out.dropped, f"{family}: {name} documented as {status} but was dropped"
    if status == "mapped" and name not in ("messages", "model"):
        assert out.chat_request != _translate(opts, baseline).chat_request, (
            f"{family}: {name} changed nothing"
        )
