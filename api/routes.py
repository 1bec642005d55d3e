"""The `/v1` route table, shared by both serving adapters (Django views and the raw ASGI adapter)."""

from __future__ import annotations

from . import handlers

# (path under the prefix, handler, methods). A trailing "{model}" takes the rest of the path.
ROUTES = [
    ("models", handlers.list_models, ("GET",)),
    ("models/{model}", handlers.retrieve_model, ("GET",)),
    ("chat/completions", handlers.chat_completions, ("POST",)),
    ("completions", handlers.create_completion, ("POST",)),
    ("embeddings", handlers.create_embeddings, ("POST",)),
    ("rerank", handlers.create_rerank, ("POST",)),
    ("usage", handlers.key_usage, ("GET",)),
    ("openapi.json", handlers.openapi, ("GET",)),
]
