"""The reproducibility manifest: what an export holds and everything needed to make it again
(model digests and GGUF metadata or HF revision, adapter hashes, prompt file hashes, judges,
seeds, decoding parameters, library versions, OS and CPU)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..environment import environment
from .records import FORMAT_NAME, FORMAT_VERSION

SCHEMA = "saferlab.engine.export/export.schema.json"


def _grouped(runs: list[dict[str, Any]], pick) -> list[dict[str, Any]]:
    """Distinct values of ``pick(config)`` with the runs that used each."""
    groups: list[dict[str, Any]] = []
    for run in runs:
        value = pick(run["config"])
        for g in groups:
            if g["value"] == value:
                g["runs"].append(run["id"])
                break
        else:
            groups.append({"value": value, "runs": [run["id"]]})
    return groups


def _model(config: dict[str, Any]) -> dict[str, Any]:
    backend = config.get("backend", {})
    out = {"spec": config.get("model"), "backend": backend.get("backend"),
           "path": config.get("model_path") or backend.get("path"),
           "sha256": config.get("model_sha256")}
    if config.get("gguf"):
        out["gguf"] = config["gguf"]
    if backend.get("backend") == "hf":
        out["hf"] = {k: backend.get(k) for k in ("model", "revision", "gguf_file", "dtype",
                                                  "transformers_version", "torch_version")}
    return out


def build_manifest(selection: list[str], sessions: list[dict[str, Any]],
                   runs: list[dict[str, Any]], adapters: list[dict[str, Any]],
                   generations: int, redaction: dict[str, Any] | None,
                   exported_utc: str | None = None) -> dict[str, Any]:
    prompt_files: dict[str, list[str]] = {}
    for run in runs:
        for name, digest in run["config"].get("prompt_files", {}).items():
            if digest not in prompt_files.setdefault(name, []):
                prompt_files[name].append(digest)
    return {
        "record": "manifest",
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "schema": SCHEMA,
        "exported_utc": exported_utc or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "exported_with": environment(),
        "selection": selection,
        "counts": {"sessions": len(sessions), "runs": len(runs), "generations": generations},
        "redaction": redaction,
        "models": _grouped(runs, _model),
        "adapters": adapters,
        "prompt_files": prompt_files,
        "judges": _grouped(runs, lambda c: {"judges": c.get("judges"),
                                            "judge_model": c.get("judge_model")}),
        "seeds": _grouped(runs, lambda c: c.get("seed")),
        "decoding": _grouped(runs, lambda c: c.get("decoding")),
        "recorded_with": _grouped(runs, lambda c: c.get("environment") or {
            "libraries": {"saferlab": c.get("saferlab_version"),
                          "llama-cpp-python": c.get("llama_cpp_version")}}),
        "sessions": sessions,
        "runs": runs,
    }
