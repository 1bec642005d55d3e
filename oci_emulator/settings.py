"""Runtime settings (``GET/POST /_emulator/settings``): shape choices where the reference marks the
real service's behaviour unverified, plus strictness switches. Defaults are in :data:`DEFAULTS`.
"""

from __future__ import annotations

import copy

from .catalog import DEFAULT_COMPARTMENT

DEFAULTS: dict = {
    # GENERIC finishReason spelling: "lower" -> stop/length/tool_calls; "upper" -> COMPLETE/MAX_TOKENS/TOOL_CALLS
    "finish_reason_case": "lower",
    # GENERIC streams end with "data: [DONE]"
    "generic_done": True,
    # GENERIC streamed tool calls: "fragments" (id+name first, then argument pieces) | "whole" (xAI style)
    "generic_tool_delta": "fragments",
    # COHEREV2 stream usage (only when streamOptions.isIncludeUsage): "finish" (on the finish event) |
    # "separate" (own event after the finish event) | "none"
    "coherev2_usage": "finish",
    # COHEREV2 streamed tool calls: "whole" (one event per call) | "fragments" (id+name, then argument
    # pieces) | "finish" (only on the finish event's message)
    "coherev2_tool_delta": "whole",
    # add a "pad" field of varying length to each stream event
    "pad": True,
    # write each stream event in two body chunks split mid-event (tests client-side buffering)
    "split_writes": False,
    # write this many stream events in one body send (OCI often puts several in one TCP segment)
    "events_per_write": 1,
    # 404 body code: "NotAuthorizedOrNotFound" or the GenAI quirk "404"
    "not_found_code": "NotAuthorizedOrNotFound",
    # code used in 400 bodies (the GenAI inference service sends the status number as the code)
    "bad_request_code": "400",
    "verify_signatures": True,
    "max_clock_skew_s": 300,
    "compartments": [DEFAULT_COMPARTMENT],
    # keep_open / hang are bounded so a forgotten connection cannot pin the server forever
    "hang_max_s": 600,
    "keep_open_max_s": 600,
    # Retry-After header (seconds) on 429 responses; null for none
    "retry_after_s": None,
    # Models of the OpenAI-compatible provider beside OCI (/provider/v1, and Azure-style
    # /openai/deployments/<name>): chat models, then names starting "text-embedding" embed
    "provider_models": ["gpt-4o", "gpt-4o-mini", "meta-llama/Llama-3.3-70B-Instruct", "text-embedding-3-small"],
}

CHOICES = {
    "finish_reason_case": ("lower", "upper"),
    "generic_tool_delta": ("fragments", "whole"),
    "coherev2_usage": ("finish", "separate", "none"),
    "coherev2_tool_delta": ("whole", "fragments", "finish"),
    "not_found_code": ("NotAuthorizedOrNotFound", "404"),
}


def defaults(compartments=None) -> dict:
    out = copy.deepcopy(DEFAULTS)
    if compartments:
        out["compartments"] = list(compartments)
    return out


def update(current: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if key not in DEFAULTS:
            raise ValueError(f"unknown setting {key!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"setting {key!r} must be one of {list(CHOICES[key])}")
        expected = type(DEFAULTS[key])
        if DEFAULTS[key] is not None and not isinstance(value, expected) and not (
            expected is float and isinstance(value, int)
        ):
            raise ValueError(f"setting {key!r} must be a {expected.__name__}")
    current.update(copy.deepcopy(changes))
    return current
