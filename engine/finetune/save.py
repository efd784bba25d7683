"""Saving a trained adapter: the PEFT folder (safetensors, fp16), the GGUF LoRA converted by
the project for llama.cpp, and saferlab.json, its provenance. Written into a temporary folder
beside the target and renamed at the end, so an interrupted save leaves nothing half-made."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..adapters import PEFT_WEIGHTS, check_peft_adapter
from ..environment import environment
from ..errors import SaferlabError
from ..models import HashCache, file_sha256, parse_model_spec
from ..saved_adapters import GGUF_FILE, META_FILE
from .gguf_lora import base_model_params, peft_to_gguf
from .spec import TrainSpec, command_line

# Hugging Face model types whose GGUF architecture name differs from theirs.
GGUF_ARCH = {"mistral": "llama"}


def base_description(spec: str, backend: Any, cache: HashCache | None) -> dict[str, Any]:
    """What the adapter was trained on, precisely enough to tell a model it fits."""
    ref = parse_model_spec(spec)
    info = backend.info()
    out: dict[str, Any] = {"spec": spec, "source": backend.source if not backend.gguf_file
                           else f"{backend.source}#{backend.gguf_file}",
                           "architecture": info.get("architecture"),
                           "revision": info.get("revision"), "dtype": info.get("dtype")}
    path = ref.path if ref.scheme == "gguf" else (
        Path(backend.source) / backend.gguf_file if backend.gguf_file else None)
    if path is not None:
        params = base_model_params(path)
        out |= {"path": str(path.resolve()), "sha256": file_sha256(path, cache),
                "size_bytes": path.stat().st_size, "name": params["base_name"] or path.stem,
                "gguf_architecture": params["arch"], "n_head": params["n_head"],
                "n_head_kv": params["n_head_kv"]}
    else:
        config = backend.config
        out |= {"name": backend.source, "gguf_architecture": GGUF_ARCH.get(
            config.model_type, config.model_type),
                "n_head": getattr(config, "num_attention_heads", None),
                "n_head_kv": getattr(config, "num_key_value_heads", None)}
    return out


def _fp16(folder: Path) -> None:
    """LoRA weights kept in half precision: half the size, no measurable change in output
    (llama.cpp's GGUF LoRA is f16 too); PEFT casts them back to the model's dtype on load."""
    import torch
    from safetensors.torch import load_file, save_file

    path = folder / PEFT_WEIGHTS
    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def save_adapter(model: Any, spec: TrainSpec, base: dict[str, Any], on_adapters: dict[str, Any],
                 on_key: str | None, training_id: int, data_sha256: str,
                 result: dict[str, Any]) -> dict[str, Any]:
    """Write the adapter's folder and return its saferlab.json (with ``registered``: the rows
    ``saferlab adapters`` lists, one per format)."""
    folder = spec.folder
    tmp = folder.parent / f".{folder.name}.saving"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with warnings.catch_warnings():  # PEFT's note that a GGUF base has no config.json
            warnings.filterwarnings("ignore", message="Could not find a config file")
            model.save_pretrained(str(tmp), safe_serialization=True)
        for extra in tmp.iterdir():  # PEFT adds a README model card; keep the folder minimal
            if extra.name not in ("adapter_config.json", PEFT_WEIGHTS):
                extra.unlink() if extra.is_file() else shutil.rmtree(extra)
        _fp16(tmp)
        gguf_note = None
        if base.get("gguf_architecture") and base.get("n_head"):
            try:
                peft_to_gguf(tmp, tmp / GGUF_FILE, arch=base["gguf_architecture"],
                             n_head=int(base["n_head"]),
                             n_head_kv=int(base.get("n_head_kv") or base["n_head"]),
                             base_name=base.get("name"))
            except SaferlabError as exc:  # the PEFT adapter stands on its own
                gguf_note = exc.message
        peft_sha = check_peft_adapter(tmp)["sha256"]
        gguf = tmp / GGUF_FILE
        meta: dict[str, Any] = {
            "name": spec.name, "format": 1,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "base": {k: v for k, v in base.items() if k not in ("n_head", "n_head_kv")},
            "on": {"key": on_key, "adapters": {n: {"sha256": a.get("sha256"),
                                                   "origin": a.get("origin")}
                                               for n, a in on_adapters.items()}} if on_key else None,
            "training": {"id": training_id, "data_sha256": data_sha256,
                         "data": spec.data.to_dict(), "steps": result.get("steps"),
                         "epochs": spec.epochs, "lr": spec.lr, "rank": spec.rank,
                         "alpha": spec.alpha, "batch_size": spec.batch_size,
                         "max_len": spec.max_len, "seed": spec.seed,
                         "tokens_per_s": result.get("tokens_per_s"),
                         "duration_s": round(result.get("duration_ms", 0) / 1000, 1),
                         "peak_rss_mb": round(result.get("peak_rss_mb", 0)),
                         "final_loss": result.get("final_loss")},
            "recipe": spec.recipe, "command": command_line(replace(spec, on=on_key)),
            # Enough to train it again (saferlab finetune --recipe): paths are the trainer's.
            "spec": replace(spec, on=on_key, out=None).to_dict(),
            "libraries": environment()["libraries"],
            "sha256": {"peft": peft_sha} | ({"gguf": file_sha256(gguf)} if gguf.is_file()
                                           else {}),
            "gguf_note": gguf_note,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    common = {"name": spec.name, "base_model": base.get("name"), "origin": "trained",
              "training_id": training_id, "on": on_key}
    meta["registered"] = [common | {"path": str(folder.resolve()), "kind": "peft",
                                    "sha256": peft_sha}]
    if (folder / GGUF_FILE).is_file():
        meta["registered"].append(common | {"path": str((folder / GGUF_FILE).resolve()),
                                            "kind": "gguf-lora",
                                            "sha256": meta["sha256"]["gguf"]})
        meta["gguf_path"] = str((folder / GGUF_FILE).resolve())
    return meta
