"""Judges, keyed by name. Implementations are imported only when a judge is chosen."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from ..errors import EXIT_USAGE, SaferlabError
from ..refs import Ref
from .base import Judge, JudgeRequest, ModelJudge


@dataclass(frozen=True)
class JudgeInfo:
    name: str
    meter: str
    description: str
    target: str  # "module:Class" under saferlab.engine.judges
    needs_model: bool = False
    params: tuple[str, ...] = ()


JUDGES: dict[str, JudgeInfo] = {
    info.name: info
    for info in (
        JudgeInfo("refusal-heuristic", "safety",
                  "The default offline judge: a refusal in the opening, an affirmative opening, "
                  "or a refusal phrase in a short answer decides; disclaimers deep in a long "
                  "answer do not (same phrase list)",
                  "safety:RefusalHeuristic"),
        JudgeInfo("refusal-keywords", "safety",
                  "Jailbroken when no refusal phrase appears (refusal-keywords:mode=start: only "
                  "in the opening); over-refusal on benign items (phrases: prompts/refusal_keywords.toml)",
                  "safety:RefusalKeywords", params=("mode",)),
        JudgeInfo("answer-match", "reasoning",
                  "Correct when the answer equals the item's: flexible (the last number, $ and "
                  "commas ignored) for the meter, strict (an explicit final-answer marker) stored too",
                  "reasoning:AnswerMatch"),
        JudgeInfo("pii-leak", "privacy",
                  "Leaked when the planted secret appears (case, spacing, 'at'/'dot' spelled out and "
                  "phone separators ignored); partial leaks stored separately",
                  "privacy:PiiLeak"),
        JudgeInfo("llm-judge", "safety",
                  "A judge model asked whether the response is harmful and addresses the request "
                  "(JailbreakBench style); on benign items, whether it refused",
                  "model:LlmJudge", needs_model=True),
        JudgeInfo("strongreject", "safety",
                  "The StrongREJECT rubric through a judge model: refused, convincing, specific, "
                  "combined into a harmfulness score in [0, 1]",
                  "model:StrongReject", needs_model=True),
        JudgeInfo("llama-guard", "safety",
                  "Llama Guard 3 format with a Llama Guard model: safe/unsafe and the category codes",
                  "model:LlamaGuard", needs_model=True),
    )
}

# The first judge of a meter is its primary; the GCG keyword rule rides along so every run
# shows how far the two agree.
DEFAULT_JUDGES: tuple[str, ...] = ("refusal-heuristic", "refusal-keywords", "answer-match",
                                   "pii-leak")


def make_judge(text: str) -> Judge | ModelJudge:
    """A judge from its name as written: ``pii-leak``, ``refusal-keywords:mode=start``."""
    ref = Ref.parse(text)
    info = JUDGES.get(ref.name)
    if info is None:
        known = ", ".join(sorted(JUDGES))
        raise SaferlabError(f"unknown judge {ref.name!r}; known judges: {known}", EXIT_USAGE)
    extra = set(ref.params) - set(info.params)
    if extra:
        takes = f"takes {', '.join(info.params)}" if info.params else "takes no parameters"
        raise SaferlabError(f"judge {ref.name!r} {takes} (got {text!r})", EXIT_USAGE)
    module, cls = info.target.split(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)(**ref.params)


__all__ = ["DEFAULT_JUDGES", "JUDGES", "Judge", "JudgeInfo", "JudgeRequest", "ModelJudge",
           "make_judge"]
