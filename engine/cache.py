"""The result cache: a request identical to one already answered returns the stored answer.

Identical means the same model file (sha256), engine and its settings (batch size included:
llama.cpp's outputs depend on it), adapter stack with scales and adapter digests, messages,
decoding parameters and seed. Only single-turn items are cached, and only for models pinned
by a digest (GGUF files, a Hugging Face GGUF) or the deterministic fake backend: a served
model can change behind its name. A cached answer keeps its verdicts when the judges (their
names, wording files and judge model) are the same, and is judged again otherwise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

from .types import AdapterStack, DecodingParams, GenerationResult, Message, Verdict

# Backend facts that do not change what is generated, or that the model digest covers.
NOT_IN_KEY = ("path", "adapters", "name", "guard_template")
JUDGE_FILES = ("refusal_keywords.toml", "judges.toml")


@dataclass(frozen=True)
class CacheMark:
    """How a generation relates to the result cache: its request's key, the key of the judges
    that gave its verdicts, and whether it was served from the cache."""

    key: str
    judges_key: str
    cached: bool = False


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer to an identical request, and its verdicts with the judges' key."""

    result: GenerationResult
    judges_key: str | None
    verdicts: tuple[Verdict, ...]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False,
                                     default=str).encode("utf-8")).hexdigest()


def run_scope(config: dict[str, Any], stack: AdapterStack | None) -> str | None:
    """What every request of a run shares in its cache key; None when the run's answers are
    not cached (a model without a digest)."""
    backend = config.get("backend") or {}
    model = config.get("model_sha256")
    if not model and backend.get("backend") != "fake":
        return None
    adapters = config.get("adapters") or {}
    uses = []
    for use in (stack.uses if stack else ()):
        digest = (adapters.get(use.name) or {}).get("sha256")
        if digest is None and backend.get("backend") != "fake":
            return None  # an adapter that is not pinned by a digest
        uses.append([use.name, use.scale, digest])
    return _digest({"model": model or config.get("model"), "adapters": uses,
                    "engine": {k: v for k, v in backend.items() if k not in NOT_IN_KEY}})


def request_key(scope: str, messages: Sequence[Message], params: DecodingParams) -> str:
    return _digest({"scope": scope, "messages": [m.to_dict() for m in messages],
                    "params": params.to_dict()})


def judges_key(config: dict[str, Any]) -> str:
    """What decides the verdicts of a stored answer: the judges, their wording, the model
    that judges (the target itself when none is named)."""
    files = config.get("prompt_files") or {}
    judge_model = config.get("judge_model_config") or {}
    return _digest({"judges": list(config.get("judges") or ()),
                    "files": {f: files.get(f) for f in JUDGE_FILES},
                    "judge_model": config.get("judge_model"),
                    "judge_model_sha256": judge_model.get("model_sha256")
                    or config.get("model_sha256")})
