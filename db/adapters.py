"""Registered adapters, for the interface's adapter toggles."""

from __future__ import annotations

from typing import Any

from .store import Store

# Which adapter kinds each model scheme's backend can load.
KINDS = {"gguf": ("gguf-lora",), "hf": ("peft",), "openai": ("served",)}


def adapters_for(store: Store, model_spec: str) -> list[dict[str, Any]]:
    """Adapters registered whose kind ``model_spec``'s backend loads. Base-model names are
    not compared: GGUF and PEFT name them too loosely to match reliably."""
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
