"""What must never be trained on: every evaluation item, by content hash and by word overlap.

Training requests come from AdvBench (and a user's own files), math problems from the
generator with training seeds. Public sets overlap (18 of JailbreakBench's behaviours are
AdvBench goals, some reworded), so a request is dropped when its normalised text hashes like
an evaluation item's, or when most of its words are an evaluation item's words.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

# Evaluation seeds of the math generator that training must avoid: every seed a user is likely
# to run (0-9) at every difficulty up to 8 steps, 200 items each.
MATH_EVAL_SEEDS = range(10)
MATH_EVAL_STEPS = range(1, 9)
MATH_EVAL_COUNT = 200
# Word-set overlap (Jaccard) at or above which two requests count as the same request.
NEAR_DUPLICATE = 0.7
_WORD = re.compile(r"[a-z0-9]+")

# Public evaluation files looked for under a datasets folder (the layout of ../shared/datasets
# and of the projects' own repositories), with the loader that reads each.
EVALUATION_FILES = (
    ("jbb", "jbb_behaviors/harmful-behaviors.csv"),
    ("jbb", "jbb_behaviors/benign-behaviors.csv"),
    ("jbb", "jbb_behaviors/behaviors.csv"),
    ("xstest", "xstest/xstest_prompts.csv"),
    ("gsm8k", "gsm8k/test.jsonl"),
    ("harmbench", "harmbench/harmbench_behaviors_text_all.csv"),
    ("harmbench", "harmbench/harmbench_behaviors_text_test.csv"),
    ("strongreject", "strongreject/strongreject_dataset.csv"),
)


def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.casefold()))


def content_hash(text: str) -> str:
    """SHA-256 of a text's words, lower-cased: punctuation, case and spacing do not count."""
    return hashlib.sha256(" ".join(words(text)).encode("utf-8")).hexdigest()


@dataclass
class EvaluationSet:
    """Hashes and word sets of evaluation prompts, and where they came from."""

    hashes: set[str] = field(default_factory=set)
    word_sets: list[frozenset[str]] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # source -> prompts

    def add(self, source: str, prompts: Iterable[str], near: bool = True) -> None:
        count = 0
        for prompt in prompts:
            self.hashes.add(content_hash(prompt))
            if near:
                self.word_sets.append(frozenset(words(prompt)))
            count += 1
        self.sources[source] = self.sources.get(source, 0) + count

    def holds(self, text: str) -> bool:
        """True when ``text`` is, or nearly is, an evaluation prompt."""
        if content_hash(text) in self.hashes:
            return True
        mine = frozenset(words(text))
        if len(mine) < 4:
            return False
        for other in self.word_sets:
            if len(mine & other) >= NEAR_DUPLICATE * len(mine | other):
                return True
        return False


def builtin_prompts() -> dict[str, list[str]]:
    """The prompts of every built-in suite: harmful, benign, privacy and the math generator
    at its evaluation seeds."""
    from ..suites import BUILTIN_SUITES, load_suite

    out = {name: [item.prompt for item in load_suite(name)]
           for name in BUILTIN_SUITES if name != "math"}
    out["math"] = [item.prompt for seed in MATH_EVAL_SEEDS for steps in MATH_EVAL_STEPS
                   for item in load_suite(f"math:steps={steps},n={MATH_EVAL_COUNT}", seed)]
    return out


def evaluation_files(datasets: Path | None) -> list[tuple[str, Path]]:
    """(loader, file) for the public evaluation sets present under ``datasets``."""
    if datasets is None:
        return []
    return [(loader, datasets / rel) for loader, rel in EVALUATION_FILES
            if (datasets / rel).is_file()]


def evaluation_set(datasets: Path | None = None) -> EvaluationSet:
    """Every built-in suite, plus the public evaluation sets found under ``datasets``.
    Generated math problems are matched exactly (word overlap between templated problems
    says nothing)."""
    from ..loaders import load_from

    ev = EvaluationSet()
    for name, prompts in builtin_prompts().items():
        ev.add(f"built-in:{name}", prompts, near=name != "math")
    for loader, path in evaluation_files(datasets):
        ev.add(f"{loader}:{path.name}", [item.prompt for item in load_from(loader, str(path))],
               near=loader != "gsm8k")
    return ev
