"""Adapters the lab knows: those saferlab made (shipped with the package, or trained) and those
registered in the database (by `saferlab adapters add`, or by a run that used them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saferlab.engine.adapter_refs import KINDS
from saferlab.engine.errors import SaferlabError
from saferlab.engine.models import parse_model_spec
from saferlab.engine.saved_adapters import META_FILE, SavedAdapter, fits, saved_adapters

from .store import Store
from .trainings import adapter_rows


def _saved_rows(saved: SavedAdapter) -> list[dict[str, Any]]:
    sha = saved.meta.get("sha256") or {}
    training = saved.meta.get("training") or {}
    common = {"name": saved.name, "origin": saved.origin, "on_adapters": saved.on,
              "base_model": saved.base.get("name"), "use_as": saved.stack,
              "recipe": saved.meta.get("command"),
              "training_id": training.get("id") if saved.origin == "trained" else None,
              "data_sha256": training.get("data_sha256"), "registered_utc": None,
              "last_used_utc": None}
    rows = [common | {"kind": "peft", "path": str(saved.folder.resolve()),
                      "sha256": sha.get("peft")}]
    if saved.gguf_path is not None:
        rows.append(common | {"kind": "gguf-lora", "path": str(saved.gguf_path.resolve()),
                              "sha256": sha.get("gguf")})
    return rows


def _use_as(row: dict[str, Any]) -> str:
    """What --adapter takes for a registered adapter not where names are looked up: its path
    (a saferlab folder for either of its formats)."""
    if row["kind"] == "served":
        return row["name"]
    path = Path(row["path"])
    if row["kind"] == "gguf-lora" and (path.parent / META_FILE).is_file():
        return str(path.parent)
    return str(path)


def all_adapters(store: Store | None) -> list[dict[str, Any]]:
    """Every adapter, one row per format, with where it came from (None: no database, the
    saved adapters alone)."""
    rows: dict[str, dict[str, Any]] = {}
    for saved in saved_adapters():
        for row in _saved_rows(saved):
            rows[row["path"]] = row
    for row in adapter_rows(store) if store is not None else ():
        mine = rows.get(row["path"])
        if mine is None:
            rows[row["path"]] = row | {"origin": row.get("origin") or (
                "served" if row["kind"] == "served" else "file"), "use_as": _use_as(row)}
        else:  # the database knows when it was registered and last used
            mine |= {k: row[k] for k in ("registered_utc", "last_used_utc")}
            mine["training_id"] = mine["training_id"] or row.get("training_id")
    return sorted(rows.values(), key=lambda r: (r["name"], r["kind"]))


def adapters_for(store: Store, model_spec: str) -> list[dict[str, Any]]:
    """Adapters ``model_spec``'s backend can load: saferlab's own that were trained on its
    weights, and registered files of the kind it loads (their base is not checked: GGUF and
    PEFT name base models too loosely to match reliably)."""
    try:
        scheme = parse_model_spec(model_spec).scheme
    except SaferlabError:
        return []
    kind = KINDS.get(scheme)
    if kind is None:
        return []
    out: dict[str, dict[str, Any]] = {}
    made = set()
    for saved in saved_adapters():
        made |= {str(saved.folder.resolve())} | (
            {str(saved.gguf_path.resolve())} if saved.gguf_path else set())
        if fits(saved, model_spec, store):
            for row in _saved_rows(saved):
                if row["kind"] == kind:
                    out[row["path"]] = row
    for row in adapter_rows(store):
        if row["kind"] == kind and row["path"] not in out and row["path"] not in made \
                and (kind == "served" or Path(row["path"]).exists()):
            out[row["path"]] = row | {"origin": row.get("origin") or "file",
                                      "use_as": _use_as(row)}
    return sorted(out.values(), key=lambda r: (r.get("on_adapters") or "", r["name"]))
