"""The training set a DataSpec asks for: reasoning, safety and keep examples, mixed with its
seed, nothing that is an evaluation item."""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import EXIT_USAGE, SaferlabError
from .data import (ADVBENCH_FILE, STAR1_FILE, DataSpec, Distill, Example, TrainingSet,
                   examples_sha256)
from .disjoint import EvaluationSet
from .reasoning_data import gsm8k_examples, math_examples
from .safety_data import (harmful_requests, keep_examples, protective_prompts, safety_examples,
                          star1_examples, star1_requests)


def find_advbench(datasets: Path | None) -> str:
    if datasets is not None and (datasets / ADVBENCH_FILE).is_file():
        return f"advbench:{datasets / ADVBENCH_FILE}"
    where = f" (not found under {datasets})" if datasets else ""
    raise SaferlabError(
        "safety data needs harmful requests to refuse: give --harmful advbench:PATH "
        "(AdvBench's harmful_behaviors.csv) or --datasets DIR holding "
        f"{ADVBENCH_FILE}{where}", EXIT_USAGE)


def find_star1(spec: str, datasets: Path | None) -> str:
    """The STAR-1 file of ``star1`` (in the datasets folder) or ``star1:PATH``."""
    if spec.startswith("star1:"):
        return spec.partition(":")[2]
    if datasets is not None and (datasets / STAR1_FILE).is_file():
        return str(datasets / STAR1_FILE)
    where = f" (not found under {datasets})" if datasets else ""
    raise SaferlabError(f"--also-refuse star1 needs --datasets DIR holding {STAR1_FILE}{where}, "
                        "or star1:PATH", EXIT_USAGE)


def _requests(spec: DataSpec, ev: EvaluationSet, datasets: Path | None,
              excluded: dict[str, int]) -> tuple[list[str], str, frozenset[str]]:
    """The harmful requests to refuse, where they came from, and those from STAR-1."""
    source = spec.harmful_source or find_advbench(datasets)
    requests, dropped = harmful_requests(source, ev)
    excluded[source.partition(":")[0]] = dropped
    from_star1: frozenset[str] = frozenset()
    if spec.also_refuse:
        path = find_star1(spec.also_refuse, datasets)
        more, dropped = star1_requests(path, ev)
        excluded["star1"] = dropped
        known = set(requests)
        from_star1 = frozenset(r for r in more if r not in known)
        requests += [r for r in more if r in from_star1]
        source += f" and star1:{path} (the questions STAR-1 declines)"
    return requests, source, from_star1


def build_training_set(spec: DataSpec, ev: EvaluationSet, distill: Distill | None = None,
                       datasets: Path | None = None, star1_max_chars: int = 1200,
                       trim_keep: bool = True) -> TrainingSet:
    """The examples ``spec`` asks for, shuffled with its seed. Raises SaferlabError for an
    unreadable source; drops (and counts) anything that is an evaluation item. ``trim_keep``:
    keep answers end at their last full sentence (see TrainSpec.trims_keep)."""
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
    requests: list[str] | None = None
    if counts["safety"]:
        if spec.safety.startswith("star1:"):
            part, dropped = star1_examples(spec.safety.partition(":")[2], counts["safety"],
                                           spec.seed, ev, star1_max_chars)
            excluded["star1"] = dropped
            sources["safety"] = spec.safety
        else:
            requests, sources["safety"], from_star1 = _requests(spec, ev, datasets, excluded)
            part = safety_examples(spec.safety, requests, counts["safety"], spec.seed, ev,
                                   from_star1)
        examples += part
    if counts["keep"]:
        protective: list[str] = []
        if spec.protective:
            if requests is None:
                requests, _, _ = _requests(spec, ev, datasets, excluded)
            protective = protective_prompts(requests, spec.protective, spec.seed, ev)
        examples += keep_examples(counts["keep"], spec.seed, distill, ev, protective,
                                  trim_keep)
        sources["keep"] = "training.toml keep instructions, answered by the model itself"
        if protective:
            sources["keep"] += (f", with {len(protective)} protective questions about the "
                                "harmful requests' tasks")
    random.Random(f"mix:{spec.seed}").shuffle(examples)
    by_kind: dict[str, int] = {}
    for example in examples:
        by_kind[example.kind] = by_kind.get(example.kind, 0) + 1
    return TrainingSet(examples, examples_sha256(examples), by_kind, excluded, sources)
