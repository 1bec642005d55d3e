"""Deterministic "model" output: answers, tool calls, reasoning, embeddings, rerank scores, tokens.

Everything here is a pure function of the request, so the same request always gets the same answer.

Tokenizer: a token is a run of word characters or a single punctuation character
(``re.findall(r"\\w+|[^\\w\\s]", text)``). ``promptTokens`` counts the tokens of every text the
request carries (message texts, tool names/descriptions/parameter schemas, tool-call arguments,
documents) plus :data:`MEDIA_TOKENS` per image/audio/video/document part. ``completionTokens``
counts the tokens produced: answer text + tool-call names and arguments + reasoning text
(reasoning tokens are also reported in ``completionTokensDetails.reasoningTokens``).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
DIRECTIVE_RE = re.compile(r"\[\[emulator:([^\]]*)\]\]")
MEDIA_TOKENS = 85
SNIPPET_TOKENS = 48
_WORDS = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
    "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor",
    "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite",
    "harbor", "island", "jasper", "kelp", "lagoon", "meadow", "nectar", "orchid", "pebble", "quartz",
    "river", "summit",
]


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text)) if text else 0


def truncate_tokens(text: str, limit: int) -> str:
    if limit <= 0:
        return ""
    for i, m in enumerate(TOKEN_RE.finditer(text)):
        if i == limit - 1:
            return text[: m.end()]
    return text


def parse_directives(text: str) -> dict:
    """``[[emulator: status=429 latency_ms=50 tool hang]]`` -> {"status": 429, ..., "tool": True}."""
    out: dict = {}
    for m in DIRECTIVE_RE.finditer(text or ""):
        for part in m.group(1).replace(",", " ").split():
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = int(v) if v.strip().lstrip("-").isdigit() else v.strip()
            else:
                out[part.strip()] = True
    return out


def strip_directives(text: str) -> str:
    return " ".join(DIRECTIVE_RE.sub(" ", text or "").split())


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Chat


@dataclass
class Turn:
    role: str  # system | user | assistant | tool
    text: str = ""
    tool_calls: list[tuple[str | None, str, str]] = field(default_factory=list)  # (id, name, args json)
    tool_call_id: str | None = None
    tool_name: str | None = None  # COHERE tool results carry the call name
    media: int = 0


@dataclass
class ToolSpec:
    name: str
    description: str = ""
    schema: dict | None = None


@dataclass
class ToolCallOut:
    id: str
    name: str
    arguments: str  # JSON text

    @property
    def parameters(self) -> dict:
        return orjson.loads(self.arguments)


@dataclass
class GenRequest:
    model_name: str
    turns: list[Turn]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str | tuple = "auto"  # auto | none | required | ("function", name)
    parallel_tools: bool = True
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    json_mode: dict | bool | None = None  # None text, True any JSON object, dict a JSON schema
    reasoning: bool = False
    extra_prompt: list[str] = field(default_factory=list)  # other texts that count as prompt
    directives: dict = field(default_factory=dict)


@dataclass
class Generation:
    text: str
    reasoning: str
    tool_calls: list[ToolCallOut]
    finish: str  # stop | length | tool_calls | stop_sequence
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    text_tokens: int


def last_user_text(turns: list[Turn]) -> str:
    for t in reversed(turns):
        if t.role == "user":
            return t.text
    return ""


def prompt_tokens(req: GenRequest) -> int:
    n = 0
    for t in req.turns:
        n += count_tokens(t.text) + t.media * MEDIA_TOKENS
        for _id, name, args in t.tool_calls:
            n += count_tokens(name) + count_tokens(args)
    for tool in req.tools:
        n += count_tokens(tool.name) + count_tokens(tool.description)
        if tool.schema:
            n += count_tokens(orjson.dumps(tool.schema).decode())
    for extra in req.extra_prompt:
        n += count_tokens(extra)
    return n


def _capitalized_words(text: str, exclude: set[str]) -> list[str]:
    words = re.findall(r"[A-Za-z][\w-]*", text)
    out = []
    for i, w in enumerate(words):
        if w[0].isupper() and i > 0 and w.lower() not in exclude:
            out.append(w)
    return out


def _example_value(name: str, schema: dict, hints: list[str], ordinal: int, numbers: list[int]):
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if t == "integer":
        return numbers[ordinal % len(numbers)] if numbers else 1 + ordinal
    if t == "number":
        return float(numbers[ordinal % len(numbers)]) if numbers else 1.5 + ordinal
    if t == "boolean":
        return True
    if t == "array":
        items = schema.get("items") or {}
        return [_example_value(name, items, hints, ordinal, numbers)] if items else []
    if t == "object":
        return example_from_schema(schema, hints, ordinal, numbers)
    if hints:
        return hints[ordinal % len(hints)]
    return f"{name}-{ordinal + 1}" if ordinal else f"{name}-value"


def example_from_schema(schema: dict | None, hints=None, ordinal: int = 0, numbers=None) -> dict:
    """A deterministic JSON object satisfying the required properties of a JSON schema."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    required = schema.get("required")
    keys = list(required) if isinstance(required, list) else list(props)
    out = {}
    for i, key in enumerate(keys):
        sub = props.get(key) if isinstance(props.get(key), dict) else {}
        out[key] = _example_value(key, sub, hints or [], ordinal + i, numbers or [])
    return out


def _choose_tools(req: GenRequest, user_text: str) -> list[ToolSpec]:
    if not req.tools or req.tool_choice == "none":
        return []
    by_name = {t.name: t for t in req.tools}
    d = req.directives
    forced = isinstance(req.tool_choice, tuple) or req.tool_choice == "required" or "tool" in d
    if isinstance(req.tool_choice, tuple):
        chosen = [by_name[req.tool_choice[1]]] if req.tool_choice[1] in by_name else []
    elif isinstance(d.get("tool"), str) and d["tool"] in by_name:
        chosen = [by_name[d["tool"]]]
    else:
        low = user_text.lower()
        hits = sorted((low.find(t.name.lower()), t.name) for t in req.tools if t.name.lower() in low)
        chosen = [by_name[name] for _pos, name in hits]
        if not chosen and forced:
            chosen = [req.tools[0]]
    if not chosen:
        return []
    low = user_text.lower()
    calls = d.get("calls")
    if isinstance(calls, int) and calls > 0:
        chosen = [chosen[i % len(chosen)] for i in range(max(calls, 1))]
    elif len(chosen) == 1 and ("twice" in low or "parallel" in low):
        chosen = chosen * 2
    if not req.parallel_tools:
        chosen = chosen[:1]
    return chosen


def _answer_text(req: GenRequest, user_text: str, choice: int) -> str:
    d = req.directives
    last = req.turns[-1] if req.turns else None
    if isinstance(d.get("text"), str):
        text = d["text"].replace("_", " ")
    elif isinstance(d.get("words"), int):
        seed = int(_hash(req.model_name, user_text, str(choice))[:8], 16)
        text = " ".join(_WORDS[(seed + i * 7) % len(_WORDS)] for i in range(d["words"])) + "."
    elif last is not None and last.role == "tool":
        output = " ".join(last.text.split()[:SNIPPET_TOKENS])
        name = last.tool_name or _tool_name_for(req.turns, last.tool_call_id) or "the tool"
        text = f"According to {name}: {output}"
    else:
        snippet = truncate_tokens(strip_directives(user_text), SNIPPET_TOKENS) or "an empty prompt"
        text = f"Emulated answer to: {snippet}"
    if choice:
        text += f" (choice {choice + 1})"
    if req.json_mode is not None:
        if isinstance(req.json_mode, dict):
            obj = example_from_schema(req.json_mode, [strip_directives(user_text)[:40]])
        else:
            obj = {"answer": text}
        text = orjson.dumps(obj).decode()
    return text


def _tool_name_for(turns: list[Turn], call_id: str | None) -> str | None:
    for t in reversed(turns):
        for cid, name, _args in t.tool_calls:
            if cid == call_id:
                return name
    return None


def generate(req: GenRequest, choice: int = 0) -> Generation:
    user_text = last_user_text(req.turns)
    p_tokens = prompt_tokens(req)
    reasoning = ""
    if req.reasoning and not req.directives.get("no_reasoning"):
        reasoning = (f"The user wrote {count_tokens(user_text)} tokens. "
                     f"Thinking about: {truncate_tokens(strip_directives(user_text), 16)}. "
                     "I will answer briefly.")
    last = req.turns[-1] if req.turns else None
    tools = [] if (last is not None and last.role == "tool") else _choose_tools(req, user_text)
    if tools:
        exclude = {t.name.lower() for t in req.tools} | {"call", "use", "please", "what", "the"}
        hints = _capitalized_words(strip_directives(user_text), exclude)
        numbers = [int(x) for x in re.findall(r"\b\d{1,6}\b", strip_directives(user_text))]
        calls = []
        seen: dict[str, int] = {}
        for i, tool in enumerate(tools):
            k = seen.get(tool.name, 0)
            seen[tool.name] = k + 1
            args = example_from_schema(tool.schema, hints, k, numbers)
            cid = "call_" + _hash(req.model_name, str(len(req.turns)), user_text, str(i), str(choice))[:24]
            calls.append(ToolCallOut(cid, tool.name, orjson.dumps(args).decode()))
        completion = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        r_tokens = count_tokens(reasoning)
        return Generation("", reasoning, calls, "tool_calls", p_tokens, completion + r_tokens, r_tokens, 0)
    text = _answer_text(req, user_text, choice)
    finish = "stop"
    for s in req.stop:
        if s and s in text:
            text = text[: text.index(s)]
            finish = "stop_sequence"
    forced_finish = req.directives.get("finish")
    limit = req.max_tokens
    t_tokens = count_tokens(text)
    if limit is not None and t_tokens > limit:
        text = truncate_tokens(text, limit)
        t_tokens = count_tokens(text)
        finish = "length"
    if forced_finish in ("length", "stop", "tool_calls", "stop_sequence"):
        finish = forced_finish
    r_tokens = count_tokens(reasoning)
    return Generation(text, reasoning, [], finish, p_tokens, t_tokens + r_tokens, r_tokens, t_tokens)


def split_text(text: str) -> list[str]:
    """Split an answer into stream deltas: one word (with its leading space) per delta."""
    if not text:
        return []
    parts = re.findall(r"\s*\S+", text)
    if parts and text[len("".join(parts)):]:
        parts[-1] += text[len("".join(parts)):]
    return parts


def split_arguments(arguments: str, pieces: int = 3) -> list[str]:
    if len(arguments) <= pieces:
        return [arguments]
    step = math.ceil(len(arguments) / pieces)
    return [arguments[i: i + step] for i in range(0, len(arguments), step)]


# ---------------------------------------------------------------------------------------------
# Embeddings and rerank


@lru_cache(maxsize=65536)
def _token_vector(token: str, dim: int) -> tuple[float, ...]:
    raw = hashlib.shake_256(token.encode()).digest(dim * 2)
    ints = struct.unpack(f"<{dim}h", raw)
    return tuple(i / 32768.0 for i in ints)


@lru_cache(maxsize=4096)
def embed_text(model_name: str, text: str, dim: int) -> tuple[float, ...]:
    """Unit-length bag-of-tokens vector: texts sharing words get similar vectors."""
    tokens = [t.lower() for t in TOKEN_RE.findall(text)] or [""]
    acc = [0.0] * dim
    base = _token_vector("\x00" + model_name, dim)
    for i in range(dim):
        acc[i] = base[i] * 0.1
    for tok in tokens[:512]:
        vec = _token_vector(tok, dim)
        for i in range(dim):
            acc[i] += vec[i]
    norm = math.sqrt(sum(x * x for x in acc)) or 1.0
    return tuple(round(x / norm, 6) for x in acc)


def quantize(vec, kind: str):
    if kind == "float":
        return list(vec)
    if kind == "int8":
        return [max(-128, min(127, round(x * 127))) for x in vec]
    if kind == "uint8":
        return [max(0, min(255, round((x + 1) * 127.5))) for x in vec]
    if kind in ("binary", "ubinary"):
        out = []
        for i in range(0, len(vec), 8):
            byte = 0
            for j, x in enumerate(vec[i: i + 8]):
                if x > 0:
                    byte |= 1 << (7 - j)
            out.append(byte - 128 if kind == "binary" else byte)
        return out
    if kind == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
    raise ValueError(kind)


def relevance(query: str, document: str) -> float:
    """Deterministic relevance in [0, 1): token overlap, with a tiny hash tie-breaker."""
    q = {t.lower() for t in TOKEN_RE.findall(query) if t.isalnum()}
    d = {t.lower() for t in TOKEN_RE.findall(document) if t.isalnum()}
    overlap = len(q & d) / (len(q) or 1)
    tie = int(_hash(query, document)[:6], 16) / float(1 << 24) * 0.01
    return round(min(0.999, overlap * 0.95 + tie), 6)
