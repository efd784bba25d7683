"""The training set a DataSpec asks for: reasoning, safety and keep examples, mixed with its
seed, nothing that is an evaluation item."""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import EXIT_USAGE, SaferlabError
from .data import ADVBENCH_FILE, DataSpec, Distill, Example, TrainingSet, examples_sha256
from .disjoint import EvaluationSet
from .reasoning_data import gsm8k_examples, math_examples
from .safety_data import harmful_requests, keep_examples, safety_examples, star1_examples


def find_advbench(datasets: Path | None) -> str:
    if datasets is not None and (datasets / ADVBENCH_FILE).is_file():
        return f"advbench:{datasets / ADVBENCH_FILE}"
    where = f" (not found under {datasets})" if datasets else ""
    raise SaferlabError(
        "safety data needs harmful requests to refuse: give --harmful advbench:PATH "
        "(AdvBench's harmful_behaviors.csv) or --datasets DIR holding "
        f"{ADVBENCH_FILE}{where}", EXIT_USAGE)


def build_training_set(spec: DataSpec, ev: EvaluationSet, distill: Distill | None = None,
                       datasets: Path | None = None, star1_max_chars: int = 1200) -> TrainingSet:
    """The examples ``spec`` asks for, shuffled with its seed. Raises SaferlabError for an
    unreadable source; drops (and counts) anything that is an evaluation item."""
    spec.check()
    counts = spec.counts()
    examples: list[Example] = []
    excluded: dict[str, int] = {}
    sources: dict[str, str] = {}
    if counts["reasoning"] and spec.data != "none":
        if spec.reasoning_source == "math":
            part, dropped = math_examples(spec.data, counts["reasoning"], spec.seed, ev)
        else:
            part, dropped = gsm8k_examples(spec.reasoning_source.partition(":")[2], spec.data,
                                           counts["reasoning"], spec.seed, ev)
        examples += part
        excluded[spec.reasoning_source.partition(":")[0]] = dropped
        sources["reasoning"] = spec.reasoning_source
    if counts["safety"]:
        if spec.safety.startswith("star1:"):
            part, dropped = star1_examples(spec.safety.partition(":")[2], counts["safety"],
                                           spec.seed, ev, star1_max_chars)
            excluded["star1"] = dropped
            sources["safety"] = spec.safety
        else:
            source = spec.harmful_source or find_advbench(datasets)
            requests, dropped = harmful_requests(source, ev)
            part = safety_examples(spec.safety, requests, counts["safety"], spec.seed, ev)
            excluded[source.partition(":")[0]] = dropped
            sources["safety"] = source
        examples += part
    if counts["keep"]:
        examples += keep_examples(counts["keep"], spec.seed, distill, ev)
        sources["keep"] = "training.toml keep instructions, answered by the model itself"
    random.Random(f"mix:{spec.seed}").shuffle(examples)
    by_kind: dict[str, int] = {}
    for example in examples:
        by_kind[example.kind] = by_kind.get(example.kind, 0) + 1
    return TrainingSet(examples, examples_sha256(examples), by_kind, excluded, sources)
