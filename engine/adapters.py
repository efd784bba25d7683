"""Adapters checked before any weights are read: PEFT LoRA folders for ``hf:`` models and
llama.cpp LoRA files (GGUF) for ``gguf:`` models; :func:`describe_adapter` tells them apart.

A PEFT folder must hold its weights as safetensors only: a pickled ``adapter_model.bin`` can run
code when it is loaded. Each check returns what a run records about the adapter, its digest
included, so a result can be traced to the exact adapter weights.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

from .errors import EXIT_MODEL, SaferlabError
from .models import GGUF_MAGIC, file_sha256

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
# Formats that unpickle on load (torch.load and friends).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_peft_adapter(path: str | Path) -> dict[str, Any]:
    """Check a PEFT LoRA folder and describe it: ``name`` (the folder's), ``path``,
    ``base_model`` (as its config names it) and ``sha256`` (over its config and weights).
    Raises SaferlabError for a missing folder, a non-LoRA adapter or pickled weights."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise SaferlabError(f"adapter not found: {folder}", EXIT_MODEL)
    if not folder.is_dir():
        hint = (" (a GGUF LoRA goes with a gguf: model)" if folder.suffix.lower() == ".gguf"
                else "")
        raise SaferlabError(
            f"a PEFT adapter is a folder with {PEFT_CONFIG} and {PEFT_WEIGHTS}, not a file: "
            f"{folder}{hint}", EXIT_MODEL)
    pickled = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                     if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise SaferlabError(
            f"only safetensors adapters are loaded: {folder} has {', '.join(pickled)}", EXIT_MODEL)
    config_path = folder / PEFT_CONFIG
    if not config_path.is_file():
        raise SaferlabError(f"{folder} is not a PEFT adapter: it has no {PEFT_CONFIG}", EXIT_MODEL)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SaferlabError(f"cannot read {config_path}: {exc}", EXIT_MODEL) from None
    peft_type = str(config.get("peft_type") or "").upper() if isinstance(config, dict) else ""
    if peft_type != "LORA":
        raise SaferlabError(
            f"{folder} is a {peft_type or 'untyped'} PEFT adapter; only LoRA adapters are loaded",
            EXIT_MODEL)
    if not (folder / PEFT_WEIGHTS).is_file():
        raise SaferlabError(f"{folder} has no {PEFT_WEIGHTS}", EXIT_MODEL)
    digest = hashlib.sha256()
    for name in (PEFT_CONFIG, PEFT_WEIGHTS):  # the two files that decide the adapter's output
        digest.update(f"{name}\0{file_sha256(folder / name)}\n".encode())
    return {"name": folder.name, "path": str(folder.resolve()),
            "base_model": config.get("base_model_name_or_path"), "sha256": digest.hexdigest()}


def check_gguf_lora(path: str | Path) -> dict[str, Any]:
    """Check a llama.cpp LoRA file (GGUF with ``general.type`` "adapter" and ``adapter.type``
    "lora", as convert_lora_to_gguf.py writes it) and describe it: ``name``, ``path``,
    ``alpha`` and ``sha256``."""
    file = Path(path).expanduser()
    if not file.exists():
        raise SaferlabError(f"LoRA file not found: {file}", EXIT_MODEL)
    if file.is_dir():
        raise SaferlabError(
            f"{file} is a folder; a llama.cpp LoRA is one .gguf file (a PEFT folder goes with "
            "an hf: model, or convert it with llama.cpp's convert_lora_to_gguf.py)", EXIT_MODEL)
    try:
        with file.open("rb") as fh:
            head = fh.read(4)
            meta = gguf_metadata(fh) if head == GGUF_MAGIC else {}
    except OSError as exc:
        raise SaferlabError(f"cannot read LoRA file {file}: {exc.strerror}", EXIT_MODEL) from None
    except (struct.error, ValueError, UnicodeDecodeError):
        raise SaferlabError(f"{file} is a damaged GGUF file", EXIT_MODEL) from None
    if head != GGUF_MAGIC:
        raise SaferlabError(
            f"{file} is not a GGUF LoRA file (it starts with {head!r}, not b'GGUF')", EXIT_MODEL)
    kind = meta.get("general.type")
    if kind != "adapter" or meta.get("adapter.type", "lora") != "lora":
        what = f"a GGUF {kind}" if kind and kind != "adapter" else "a GGUF file without LoRA metadata"
        raise SaferlabError(
            f"{file} is {what}, not a LoRA adapter (convert a PEFT adapter with llama.cpp's "
            "convert_lora_to_gguf.py)", EXIT_MODEL)
    return {"name": file.stem, "path": str(file.resolve()),
            "base_model": meta.get("general.base_model.0.name"),
            "alpha": meta.get("adapter.lora.alpha"), "sha256": file_sha256(file)}


def describe_adapter(path: str | Path) -> dict[str, Any]:
    """Either kind, told apart by what is on disk: a folder (or no ``.gguf`` suffix) is a PEFT
    adapter (``kind`` "peft"), a file a GGUF LoRA (``kind`` "gguf-lora")."""
    target = Path(path).expanduser()
    if target.is_file() or (not target.exists() and target.suffix.lower() == ".gguf"):
        return check_gguf_lora(target) | {"kind": "gguf-lora"}
    return check_peft_adapter(target) | {"kind": "peft"}


# GGUF value types: fixed-size ones by struct format; 8 is a string, 9 an array.
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_metadata(fh: BinaryIO) -> dict[str, Any]:
    """The scalar and string key-values of a GGUF header (after the magic); arrays, such as a
    model's vocabulary, are skipped."""

    def read(fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = fh.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack(fmt, data)[0]

    def string() -> str:
        return fh.read(read("<Q")).decode("utf-8")

    def skip(kind: int, count: int = 1) -> None:
        if kind in _GGUF_SCALARS:
            fh.seek(struct.calcsize(_GGUF_SCALARS[kind]) * count, 1)
        elif kind == _GGUF_STRING:
            for _ in range(count):
                fh.seek(read("<Q"), 1)
        elif kind == _GGUF_ARRAY:
            for _ in range(count):
                inner = read("<I")
                skip(inner, read("<Q"))
        else:
            raise ValueError(f"unknown GGUF value type {kind}")

    version = read("<I")
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    read("<Q")  # tensor count
    meta: dict[str, Any] = {}
    for _ in range(read("<Q")):
        key, kind = string(), read("<I")
        if kind in _GGUF_SCALARS:
            meta[key] = read(_GGUF_SCALARS[kind])
        elif kind == _GGUF_STRING:
            meta[key] = string()
        else:
            skip(kind)
    return meta
