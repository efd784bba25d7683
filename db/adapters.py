"""Registered adapters, for the interface's adapter toggles."""

from __future__ import annotations

from typing import Any

from .store import Store

# Which adapter kinds each model scheme's backend can load.
KINDS = {"gguf": ("gguf-lora",), "hf": ("peft",), "openai": ("served",)}


def adapters_for(store: Store, model_spec: str) -> list[dict[str, Any]]:
    """Adapters registered for ``model_spec``'s backend (and, when recorded, its base model)."""
    from saferlab.engine.errors import SaferlabError
    from saferlab.engine.models import parse_model_spec

    try:
        scheme = parse_model_spec(model_spec).scheme
    except SaferlabError:
        return []
    kinds = KINDS.get(scheme, ())
    if not kinds:
        return []
    rows = list(store.query(
        f"SELECT * FROM adapters WHERE kind IN ({','.join('?' * len(kinds))}) ORDER BY name",
        list(kinds)))
    return rows
