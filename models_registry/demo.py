"""Demo mode: the catalogue that points at the built-in OCI emulator."""

from __future__ import annotations

import yaml

from .services import models_import

DEMO_SOURCE = "demo"
DEMO_MODELS = {
    "ondemand": [
        "meta.llama-3.3-70b-instruct",
        "meta.llama-4-maverick-17b-128e-instruct-fp8",
        "xai.grok-4",
        "openai.gpt-oss-120b",
        "google.gemini-2.5-flash",
        "cohere.command-r-08-2024",
        "cohere.command-a-03-2025",
        "cohere.rerank-v4.0-fast",
    ],
    "embedding": ["cohere.embed-v4.0", "cohere.embed-english-v3.0"],
}


def demo_models_yaml(*, region: str, compartment_id: str) -> str:
    models = {
        kind: [{"name": m, "model_id": m, "description": "Served by the built-in OCI emulator (demo mode)"}
               for m in names]
        for kind, names in DEMO_MODELS.items()
    }
    return yaml.safe_dump([{"region": region, "compartment_id": compartment_id, "models": models}])


def demo_models_register(*, region: str, compartment_id: str):
    return models_import(text=demo_models_yaml(region=region, compartment_id=compartment_id), source=DEMO_SOURCE)
