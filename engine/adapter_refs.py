"""What a run's ``--adapter`` names, resolved before any weights are read.

An adapter is named by a path (a PEFT folder, a GGUF LoRA file, or a folder saferlab made), by
the name of an adapter saferlab made (shipped for the embedded model, or trained into
``$SAFERLAB_HOME/adapters``), or, for ``openai:`` models, by the name a server gives it. Several
join into a stack with scales: ``aligned+long-cot@0.5``. Each adapter gets one name, the one
requests use (:class:`~saferlab.engine.types.AdapterStack`), and one description, the one a
run records: path, kind, sha256, base model and where it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .errors import EXIT_MODEL, EXIT_USAGE, SaferlabError
from .models import HashCache, file_sha256, parse_model_spec
from .saved_adapters import (META_FILE, SHIPPED, TRAINED, SavedAdapter, find_saved, meta_problem,
                             read_saved, saved_adapters, shipped_root, trained_root)
from .types import AdapterStack, AdapterUse

# What each scheme's backend loads.
KINDS = {"gguf": "gguf-lora", "hf": "peft", "openai": "served"}


def safe_name(name: str) -> str:
    """A name that a stack can hold: '+' and '@' join and scale adapters."""
    return re.sub(r"[+@\s]", "-", name.strip()) or "adapter"


def _saved_info(adapter: SavedAdapter, scheme: str, cache: HashCache | None) -> dict[str, Any]:
    from .adapters import check_peft_adapter

    common = {"name": adapter.name, "origin": adapter.origin, "on": adapter.on,
              "base_model": adapter.base.get("name")}
    if scheme == "gguf":
        path = adapter.gguf_path
        if path is None:
            raise SaferlabError(f"adapter {adapter.name!r} ({adapter.folder}) has no GGUF LoRA, "
                                "so it cannot run on llama.cpp; use an hf: model", EXIT_MODEL)
        return common | {"path": str(path.resolve()), "kind": "gguf-lora",
                         "sha256": file_sha256(path, cache)}
    info = check_peft_adapter(adapter.folder)
    return info | common | {"kind": "peft"}


def resolve_one(source: str, model: str, cache: HashCache | None = None) -> dict[str, Any]:
    """The description of one adapter named ``source`` for ``model``'s backend."""
    from .adapters import check_gguf_lora, check_peft_adapter

    scheme = parse_model_spec(model).scheme
    if scheme not in KINDS:
        raise SaferlabError(f"{model} takes no adapters", EXIT_USAGE)
    if scheme == "openai":
        # vLLM serves each LoRA adapter under a model name of its own.
        return {"name": source, "path": None, "base_model": model, "sha256": None,
                "kind": "served", "origin": "served"}
    # A bare name ("aligned") is saferlab's adapter of that name even when the working folder
    # holds an entry called so; "./aligned" is the folder.
    bare = not any(c in source for c in "/\\~") and not source.lower().endswith(".gguf")
    saved = find_saved(source, model, cache) if bare else None
    if saved is not None:
        return _saved_info(saved, scheme, cache)
    path = Path(source).expanduser()
    named = trained_root() / source  # saferlab's folder of that name, if it cannot be read
    if bare and not path.exists() and (named / META_FILE).is_file() and meta_problem(named):
        path = named
    if path.is_dir() and (path / META_FILE).is_file():
        # saferlab made it, wherever it lies now
        saved = read_saved(path, SHIPPED if path.resolve().is_relative_to(shipped_root())
                           else TRAINED)
        if saved is None:
            raise SaferlabError(f"adapter {source!r}: {meta_problem(path)}", EXIT_MODEL)
        return _saved_info(saved, scheme, cache)
    if path.exists() or source.lower().endswith(".gguf") or "/" in source:
        info = (check_gguf_lora(path) if scheme == "gguf" else check_peft_adapter(path))
        return info | {"name": safe_name(info["name"]), "kind": KINDS[scheme], "origin": "file"}
    other = find_saved(source)
    if other is not None:
        raise SaferlabError(
            f"adapter {source!r} was trained on {other.base.get('name') or 'another model'}, "
            f"not on {model}", EXIT_MODEL)
    known = sorted(a.name for a in saved_adapters())
    raise SaferlabError(
        f"unknown adapter {source!r}: no such file, and no adapter of that name"
        + (f" (saferlab has: {', '.join(known)})" if known else "")
        + "; train one with saferlab finetune", EXIT_MODEL)


def resolve_stacks(model: str, texts: Sequence[str], cache: HashCache | None = None,
                   ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """For each of ``texts`` (a source, or sources joined by '+' each with an optional
    '@SCALE'), the key of its stack; and every adapter to load, by name."""
    adapters: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}  # source text -> adapter name
    keys: list[str] = []
    for text in dict.fromkeys(t.strip() for t in texts):
        if not text:
            raise SaferlabError("an empty adapter name", EXIT_USAGE)
        if Path(text).expanduser().exists():
            parts = [(text, 1.0)]
        else:
            try:
                parts = [(u.name, u.scale) for u in AdapterStack.parse(text).uses]
            except ValueError as exc:
                raise SaferlabError(f"cannot read adapter stack {text!r}: {exc}",
                                    EXIT_USAGE) from None
        uses = []
        for source, scale in parts:
            if source not in names:
                info = resolve_one(source, model, cache)
                name = info["name"]
                if name in adapters and adapters[name].get("path") != info.get("path"):
                    raise SaferlabError(f"two adapters are named {name!r} ({adapters[name]['path']}"
                                        f" and {info['path']}); rename one", EXIT_USAGE)
                adapters[name] = info
                names[source] = name
            uses.append(AdapterUse(names[source], scale))
        try:
            key = AdapterStack(tuple(uses)).key
            AdapterStack.parse(key)  # the same adapter twice in one stack
        except ValueError as exc:
            raise SaferlabError(f"cannot use adapter stack {text!r}: {exc}", EXIT_USAGE) from None
        keys.append(key)
    return keys, adapters


def to_load(adapters: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, what the backend loads: a path, or a served name) for each adapter."""
    return sorted((name, info.get("path") or name) for name, info in adapters.items())


def registry_key(info: dict[str, Any]) -> str:
    """The one key of an adapter in the database's registry: its path, or ``served:NAME`` for
    an adapter that only a server knows."""
    return info.get("path") or f"served:{info['name']}"
