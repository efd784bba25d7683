"""Adapters saferlab made: trained by ``saferlab finetune`` into ``$SAFERLAB_HOME/adapters``, or
shipped inside the package for the embedded model. Each is a folder holding both formats, a
PEFT LoRA (for ``hf:`` models) and a GGUF LoRA (for llama.cpp), and ``saferlab.json``, its
provenance: the base model it was trained on, the adapters under it, the data and recipe."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .models import HashCache, embedded_model_path, file_sha256, parse_model_spec
from .paths import home_dir

META_FILE = "saferlab.json"
GGUF_FILE = "adapter.gguf"
SHIPPED_FOLDER = "adapters"  # inside saferlab.prompts
SHIPPED, TRAINED = "shipped", "trained"
# An adapter's name: no '+' or '@', which join and scale adapters in a stack.
ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class SavedAdapter:
    name: str
    folder: Path
    meta: dict[str, Any]
    origin: str  # "shipped" or "trained"

    @property
    def gguf_path(self) -> Path | None:
        path = self.folder / GGUF_FILE
        return path if path.is_file() else None

    @property
    def on(self) -> str | None:
        """The adapter stack this one was trained on top of (``aligned``), if any."""
        return (self.meta.get("on") or {}).get("key")

    @property
    def stack(self) -> str:
        """How to use it as trained: on top of the adapters it was trained on."""
        return f"{self.on}+{self.name}" if self.on else self.name

    @property
    def base(self) -> dict[str, Any]:
        return self.meta.get("base") or {}


def _read_meta(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``folder``'s saferlab.json, or None and what makes it unusable (one line). The fields
    checked are those the lab reads to list, match and load an adapter."""
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"{path} cannot be read: {exc.strerror or exc}"
    except ValueError as exc:
        return None, f"{path} is not JSON ({exc})"
    if not isinstance(meta, dict):
        return None, f"{path} is not a JSON object"
    name = meta.get("name")
    if not isinstance(name, str) or not ADAPTER_NAME.fullmatch(name):
        return None, (f"{path}: 'name' must be an adapter name (letters, digits, '.', '_' and "
                      f"'-'), not {name!r}")
    for key in ("base", "on", "sha256", "training"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            return None, f"{path}: '{key}' must be an object, not {type(meta[key]).__name__}"
    on_key = (meta.get("on") or {}).get("key")
    if on_key is not None and not isinstance(on_key, str):
        return None, f"{path}: 'on.key' must be text, not {type(on_key).__name__}"
    base = meta.get("base") or {}
    for key, kind in (("spec", str), ("path", str), ("source", str), ("name", str),
                      ("sha256", str), ("size_bytes", int)):
        if base.get(key) is not None and not isinstance(base[key], kind):
            return None, f"{path}: 'base.{key}' must be {kind.__name__}, not " \
                         f"{type(base[key]).__name__}"
    return meta, None


def meta_problem(folder: Path) -> str | None:
    """What makes ``folder``'s saferlab.json unusable, or None when it is sound."""
    return _read_meta(folder)[1]


def read_saved(folder: Path, origin: str) -> SavedAdapter | None:
    """The adapter in ``folder``, or None when its saferlab.json is missing or unusable
    (meta_problem says why)."""
    meta, _ = _read_meta(folder)
    return None if meta is None else SavedAdapter(meta["name"], folder, meta, origin)


def shipped_root() -> Path:
    return Path(str(resources.files("saferlab.prompts").joinpath(SHIPPED_FOLDER)))


def trained_root() -> Path:
    return home_dir() / "adapters"


def _folders(origin: str) -> list[Path]:
    """The folders holding a saferlab.json under the shipped or the trained root."""
    root = shipped_root() if origin == SHIPPED else trained_root()
    if not root.is_dir():
        return []
    # Shipped sets live one level deeper: adapters/<base model>/<name>/saferlab.json
    pattern = f"*/*/{META_FILE}" if origin == SHIPPED else f"*/{META_FILE}"
    return [meta.parent for meta in sorted(root.glob(pattern))]


def _scan(origin: str) -> list[SavedAdapter]:
    found = (read_saved(folder, origin) for folder in _folders(origin))
    return [a for a in found if a is not None]


def left_out_adapters() -> list[str]:
    """Why each adapter folder that saved_adapters() leaves out was left out (one line each):
    a saferlab.json that cannot be used, or a name that a later trained folder takes."""
    problems = [p for p in (meta_problem(f) for origin in (SHIPPED, TRAINED)
                            for f in _folders(origin)) if p]
    named: dict[str, Path] = {}
    for adapter in _scan(TRAINED):  # in the order saved_adapters() reads them: the last wins
        if adapter.name in named:
            problems.append(f"{named[adapter.name]} is also called {adapter.name!r}; "
                            f"{adapter.folder} is used")
        named[adapter.name] = adapter.folder
    return problems


def saved_adapters() -> list[SavedAdapter]:
    """Every shipped and trained adapter (a trained one shadows a shipped one of its name)."""
    out: dict[str, SavedAdapter] = {a.name: a for a in _scan(SHIPPED)}
    out.update({a.name: a for a in _scan(TRAINED)})
    return list(out.values())


def model_file(spec: str) -> Path | None:
    """The weights file a model spec loads, for GGUF models (llama.cpp or transformers)."""
    try:
        ref = parse_model_spec(spec)
    except Exception:
        return None
    if ref.scheme == "gguf":
        return ref.path
    if ref.scheme == "hf" and "#" in ref.target:
        folder, _, name = ref.target.partition("#")
        return Path(folder).expanduser() / name
    return None


def fits(adapter: SavedAdapter, spec: str, cache: HashCache | None = None) -> bool:
    """Whether ``adapter`` was trained on the weights ``spec`` loads: the same GGUF file (by
    path, else by size and sha256) or the same Hugging Face model. A model file that cannot
    be looked at (a name too long, a folder not readable) fits nothing: loading it says why."""
    try:
        return _fits(adapter, spec, cache)
    except OSError:
        return False


def _fits(adapter: SavedAdapter, spec: str, cache: HashCache | None) -> bool:
    base = adapter.base
    path = model_file(spec)
    if path is not None:
        if not path.is_file():
            return False
        if base.get("path") and Path(base["path"]).resolve() == path.resolve():
            return True
        if base.get("spec") == "embedded" and _is_embedded(path):
            return True
        if base.get("size_bytes") not in (None, path.stat().st_size):
            return False
        return bool(base.get("sha256")) and file_sha256(path, cache) == base["sha256"]
    try:
        ref = parse_model_spec(spec)
    except Exception:
        return False
    return ref.scheme == "hf" and base.get("source") == ref.target


def _is_embedded(path: Path) -> bool:
    try:
        return embedded_model_path().resolve() == path.resolve()
    except Exception:  # the embedded model is not installed
        return False


def adapters_for(spec: str, cache: HashCache | None = None) -> list[SavedAdapter]:
    return [a for a in saved_adapters() if fits(a, spec, cache)]


def find_saved(name: str, spec: str | None = None,
               cache: HashCache | None = None) -> SavedAdapter | None:
    """The saved adapter called ``name`` (for ``spec``'s model when given)."""
    for adapter in saved_adapters():
        if adapter.name == name and (spec is None or fits(adapter, spec, cache)):
            return adapter
    return None
