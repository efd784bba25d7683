"""What a GGUF file says about itself, read from its header without loading the model:
name, architecture, quantization, parameter count and context length, for the model picker
and the export manifest. Large arrays (the vocabulary) are skipped, not read."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from .errors import EXIT_MODEL, SaferlabError

# llama.cpp's llama_ftype: what general.file_type means.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}

# GGUF value types: struct format of the scalars; 8 is a string, 9 an array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this are counted, not kept (a vocabulary has tens of thousands).
_KEEP_ARRAY = 64
_MAX_STRING = 1 << 24


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = self.f.read(size)
        if len(data) != size:
            raise SaferlabError(f"{self.path}: GGUF header is truncated", EXIT_MODEL)
        return struct.unpack(fmt, data)[0]

    def string(self, keep: bool = True) -> str | None:
        n = self.take("<Q")
        if n > _MAX_STRING:
            raise SaferlabError(f"{self.path}: GGUF header is corrupt (a string of {n} bytes)",
                                EXIT_MODEL)
        if not keep:
            self.f.seek(n, 1)
            return None
        return self.f.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = True) -> Any:
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string(keep)
        if vtype == _ARRAY:
            item_type, count = self.take("<I"), self.take("<Q")
            keep_items = keep and count <= _KEEP_ARRAY
            if item_type in _SCALARS and not keep_items:
                self.f.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
                return {"array_length": count}
            items = [self.value(item_type, keep_items) for _ in range(count)]
            return items if keep_items else {"array_length": count}
        raise SaferlabError(f"{self.path}: GGUF header is corrupt (value type {vtype})",
                            EXIT_MODEL)


def read_gguf_header(path: Path | str) -> tuple[dict[str, Any], list[tuple[str, list[int]]]]:
    """(metadata key-values, tensor (name, shape) list) of a GGUF file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            r = _Reader(f, path)
            if f.read(4) != b"GGUF":
                raise SaferlabError(f"{path} is not a GGUF file", EXIT_MODEL)
            version = r.take("<I")
            if version < 2:
                raise SaferlabError(f"{path}: GGUF version {version} is too old to read",
                                    EXIT_MODEL)
            n_tensors, n_kv = r.take("<Q"), r.take("<Q")
            meta: dict[str, Any] = {"GGUF.version": version}
            for _ in range(n_kv):
                key = r.string()
                meta[key] = r.value(r.take("<I"))
            tensors = []
            for _ in range(n_tensors):
                name = r.string()
                dims = [r.take("<Q") for _ in range(r.take("<I"))]
                r.take("<I"), r.take("<Q")  # type, offset
                tensors.append((name, dims))
            return meta, tensors
    except OSError as exc:
        raise SaferlabError(f"cannot read {path}: {exc.strerror}", EXIT_MODEL) from None


def gguf_summary(path: Path | str) -> dict[str, Any]:
    """Name, architecture, quantization, parameters, context length and size of a GGUF."""
    meta, tensors = read_gguf_header(path)
    arch = meta.get("general.architecture") or ""
    params = 0
    for _, dims in tensors:
        n = 1
        for d in dims:
            n *= d
        params += n
    file_type = meta.get("general.file_type")
    return {
        "name": meta.get("general.name") or Path(path).stem,
        "architecture": arch or None,
        "quantization": FILE_TYPES.get(file_type, f"type {file_type}")
        if file_type is not None else None,
        "parameters": params,
        "context_length": meta.get(f"{arch}.context_length"),
        "size_label": meta.get("general.size_label"),
        "license": meta.get("general.license"),
        "chat_template": "tokenizer.chat_template" in meta,
        "size_bytes": Path(path).stat().st_size,
        "gguf_version": meta["GGUF.version"],
    }


def human_count(n: int | None) -> str:
    """134515008 -> '135M'."""
    if not n:
        return "?"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
