"""PEFT LoRA adapters converted to llama.cpp LoRA files (GGUF), so that an adapter trained with
transformers also runs on the GGUF base model. The file is the one llama.cpp's
``llama_adapter_lora_init`` loads, written with the ``gguf`` package; numpy, safetensors and
gguf are needed, torch is not.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any

from ..adapters import PEFT_CONFIG, PEFT_WEIGHTS, gguf_metadata, check_peft_adapter
from ..errors import EXIT_MODEL, SaferlabError
from ..models import GGUF_MAGIC

# transformers module name -> llama.cpp tensor name inside a block (blk.{i}.<name>.weight).
MODULE_TENSORS = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}
# llama.cpp's model converter permutes the q/k rows of these architectures for its RoPE layout;
# the others keep transformers' layout.
PERMUTED_ARCHS = ("llama", "mistral")
PLAIN_ARCHS = ("qwen2", "qwen3")
DTYPES = ("f16", "f32")

_KEY = re.compile(r"(?:base_model\.model\.)?model\.layers\.(\d+)\.(?:self_attn|mlp)\."
                  r"(\w+)\.lora_([AB])\.weight")


def _fail(message: str) -> SaferlabError:
    return SaferlabError(message, EXIT_MODEL)


def gguf_tensor_name(key: str) -> str:
    """The llama.cpp name of a PEFT LoRA weight: ``base_model.model.model.layers.3.self_attn.
    q_proj.lora_A.weight`` -> ``blk.3.attn_q.weight.lora_a``."""
    match = _KEY.fullmatch(key)
    if match is None or match[2] not in MODULE_TENSORS:
        module = match[2] if match else key.removeprefix("base_model.model.")
        raise _fail(f"cannot convert the LoRA weight {key} to llama.cpp: only "
                    f"{', '.join(MODULE_TENSORS)} inside the layers are supported, not {module}")
    return f"blk.{match[1]}.{MODULE_TENSORS[match[2]]}.weight.lora_{match[3].lower()}"


def rope_permute(rows: Any, n_head: int) -> Any:
    """Reorder the rows of a q or k projection (or of its LoRA B) as llama.cpp's converter does:
    within each head, the two rotary halves become interleaved pairs."""
    n_rows = rows.shape[0]
    if n_rows % (2 * n_head):
        raise _fail(f"a projection of {n_rows} rows does not split into {n_head} heads")
    return (rows.reshape(n_head, 2, n_rows // n_head // 2, *rows.shape[1:])
            .swapaxes(1, 2).reshape(rows.shape))


def base_model_params(model_path: str | Path) -> dict[str, Any]:
    """``arch``, ``n_head``, ``n_head_kv`` and ``base_name`` of a GGUF base model, read from its
    header: the keyword arguments :func:`peft_to_gguf` needs to target that model."""
    path = Path(model_path).expanduser()
    try:
        with path.open("rb") as fh:
            meta = gguf_metadata(fh) if fh.read(4) == GGUF_MAGIC else None
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None
    except (struct.error, ValueError, UnicodeDecodeError):
        raise _fail(f"{path} is a damaged GGUF file") from None
    if meta is None:
        raise _fail(f"{path} is not a GGUF model")
    arch = meta.get("general.architecture")
    n_head = meta.get(f"{arch}.attention.head_count")
    if not arch or not isinstance(n_head, int):  # per-layer head counts are arrays: unsupported
        raise _fail(f"{path} does not say its architecture and head count")
    return {"arch": arch, "n_head": n_head,
            "n_head_kv": meta.get(f"{arch}.attention.head_count_kv", n_head),
            "base_name": meta.get("general.name")}


def _check_config(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / PEFT_CONFIG).read_text(encoding="utf-8"))
    unsupported = {
        "DoRA": config.get("use_dora"), "bias LoRA": config.get("lora_bias"),
        "modules_to_save": config.get("modules_to_save"),
        "per-module alpha (alpha_pattern)": config.get("alpha_pattern"),
        "fan_in_fan_out": config.get("fan_in_fan_out"),
        "target_parameters": config.get("target_parameters"),
        "trainable_token_indices": config.get("trainable_token_indices"),
    }
    found = [name for name, value in unsupported.items() if value]
    targets = config.get("target_modules")
    if isinstance(targets, list):  # a string is a regex, checked key by key below
        found += [f"LoRA on {t}" for t in sorted(targets) if t not in MODULE_TENSORS]
    if found:
        raise _fail(f"{folder}: llama.cpp LoRA files cannot hold {', '.join(found)}")
    if not (isinstance(config.get("lora_alpha"), (int, float)) and config["lora_alpha"] > 0):
        # llama.cpp reads an alpha of 0 as "no scaling", PEFT as "no effect"
        raise _fail(f"{folder}: lora_alpha must be a positive number")
    return config


def _load_weights(path: Path) -> dict[str, Any]:
    import numpy as np
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except TypeError:  # numpy has no bfloat16: widen it to float32 by hand
        raw = path.read_bytes()
        size = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + size])
        header.pop("__metadata__", None)
        kinds = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}
        weights = {}
        for key, info in header.items():
            if info["dtype"] not in kinds:
                raise _fail(f"{path}: {key} is {info['dtype']}, not a float LoRA weight") from None
            start, end = (8 + size + o for o in info["data_offsets"])
            array = np.frombuffer(raw[start:end], dtype=kinds[info["dtype"]])
            if info["dtype"] == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            weights[key] = array.reshape(info["shape"])
        return weights


def peft_to_gguf(peft_dir: str | Path, out: str | Path, *, arch: str, n_head: int,
                 n_head_kv: int, dtype: str = "f16", base_name: str | None = None) -> Path:
    """Convert a PEFT LoRA folder into a llama.cpp LoRA file at ``out`` for a GGUF base model of
    architecture ``arch`` with ``n_head`` query and ``n_head_kv`` key/value heads (see
    :func:`base_model_params`). Tensors are stored as ``dtype`` ("f16" or "f32"). The file
    appears whole or not at all. Raises SaferlabError for anything llama.cpp cannot apply as
    PEFT does (DoRA, bias or embedding LoRA, modules_to_save, another architecture)."""
    import gguf
    import numpy as np

    folder, out = Path(peft_dir).expanduser(), Path(out).expanduser()
    if arch not in PERMUTED_ARCHS + PLAIN_ARCHS:
        raise _fail(f"cannot convert a LoRA for the {arch!r} architecture "
                    f"(supported: {', '.join(PERMUTED_ARCHS + PLAIN_ARCHS)})")
    if dtype not in DTYPES:
        raise _fail(f"unknown LoRA dtype {dtype!r} (choose {' or '.join(DTYPES)})")
    check_peft_adapter(folder)
    config = _check_config(folder)
    weights = _load_weights(folder / PEFT_WEIGHTS)
    tensors = {gguf_tensor_name(key): np.asarray(value, dtype=np.float32)
               for key, value in weights.items()}
    targets = sorted({name.rsplit(".lora_", 1)[0] for name in tensors}, key=_tensor_order)
    if not targets:
        raise _fail(f"{folder} holds no LoRA weights")
    for target in targets:
        a, b = tensors.get(f"{target}.lora_a"), tensors.get(f"{target}.lora_b")
        if a is None or b is None or a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise _fail(f"{folder}: {target} has no matching LoRA A and B pair")
        if config.get("use_rslora"):
            # PEFT scales by alpha/sqrt(r), llama.cpp by alpha/r: B carries the difference
            b = b * math.sqrt(a.shape[0])
        if arch in PERMUTED_ARCHS and ".attn_q." in target:
            b = rope_permute(b, n_head)
        elif arch in PERMUTED_ARCHS and ".attn_k." in target:
            b = rope_permute(b, n_head_kv)
        tensors[f"{target}.lora_b"] = b

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    writer = gguf.GGUFWriter(tmp, arch=arch)
    try:
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        # llama.cpp scales each pair by alpha / rank (its rank from the tensor's shape), as PEFT
        # does without rslora, rank_pattern included
        writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
        if base_name:
            writer.add_base_model_count(1)
            writer.add_base_model_name(0, base_name)
        numpy_dtype = np.float16 if dtype == "f16" else np.float32
        for name in sorted(tensors, key=_tensor_order):
            # numpy shapes as PEFT has them; GGUF stores the dims reversed, as llama.cpp expects
            writer.add_tensor(name, np.ascontiguousarray(tensors[name], dtype=numpy_dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        writer.close()
        Path(tmp).unlink(missing_ok=True)
    return out


def _tensor_order(name: str) -> tuple[int, str]:
    block, rest = name.removeprefix("blk.").split(".", 1)
    return int(block), rest
