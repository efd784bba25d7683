"""Reasoning data: math word problems from the generator (training seeds, answers exact by
construction) or GSM8K's train split, written three ways: ``direct`` (the answer only),
``cot`` (worked steps, then the answer) and ``long-cot`` (``<think>`` with exploration, a check
of every step, one misreading caught and corrected and the chain gone over again, then the
answer)."""

from __future__ import annotations

import random
import re
from typing import Any

from ..errors import EXIT_USAGE, SaferlabError
from ..refs import fill
from ..types import Message
from .data import MATH_STEPS, Example, training_text
from .disjoint import EvaluationSet, content_hash

SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def equation(op: str, a: int, n: int, b: int) -> str:
    return f"{a} {SYMBOL[op]} {n} = {b}"


def _inverse(op: str, a: int, n: int, b: int) -> str:
    back = {"add": f"{b} - {n} = {a}", "sub": f"{b} + {n} = {a}", "mul": f"{b} / {n} = {a}",
            "div": f"{b} * {n} = {a}"}
    return back[op]


def math_solution(problem: Any, regime: str, rng: random.Random) -> str:
    """The answer to a generated problem in a regime; every number in it is computed."""
    text = training_text()
    final = fill(text["cot"]["answer"], {"answer": problem.answer})
    if regime == "direct":
        return final
    values = {"name": problem.name, "start": problem.start, "things": problem.things}
    if regime == "cot":
        lines = [fill(text["cot"]["start"], values)]
        for s in problem.steps:
            lines.append(fill(text["cot"]["step"], {
                "sentence": s.sentence, "arithmetic": equation(s.op, s.before, s.operand,
                                                               s.after)}))
        return "\n".join(lines + [final])
    long = text["long_cot"]
    lines = ["<think>", rng.choice(long["openers"]), fill(long["start"], values)]
    # One step is misread first and corrected in words before its arithmetic; every equation
    # written is true.
    doubt_at = rng.randrange(len(problem.steps))
    chain = []
    for i, s in enumerate(problem.steps):
        work = equation(s.op, s.before, s.operand, s.after)
        chain.append(work)
        why = long["doubt"] if i == doubt_at else long["reason"]
        lines.append(f"{s.sentence} {fill(rng.choice(why[s.op]), values | {'n': s.operand})} "
                     f"{work}.")
        lines.append(fill(rng.choice(long["check"]),
                          {"inverse": _inverse(s.op, s.before, s.operand, s.after),
                           "after": s.after}))
    lines.append(fill(rng.choice(long["verify"]), {"chain": ", ".join(chain)}))
    lines.append("</think>")
    return "\n".join(lines + [final])


def math_examples(regime: str, count: int, seed: int, ev: EvaluationSet) -> tuple[list[Example], int]:
    """``count`` generated problems in ``regime``, none of them an evaluation problem."""
    from ..suites import math_problem

    out, dropped, i = [], 0, 0
    while len(out) < count:
        rng = random.Random(f"train:{seed}:{i}")
        i += 1
        problem = math_problem(rng, rng.choice(MATH_STEPS))
        if content_hash(problem.question) in ev.hashes:
            dropped += 1
            continue
        answer = math_solution(problem, regime, rng)
        out.append(Example("math", "reasoning", regime, (
            Message("user", problem.question), Message("assistant", answer))))
    return out, dropped


_CALC = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


def gsm8k_solution(solution: str, answer: str, regime: str, rng: random.Random) -> str:
    """GSM8K's worked solution (calculator annotations removed) in a regime."""
    text = training_text()
    final = fill(text["cot"]["answer"], {"answer": answer})
    if regime == "direct":
        return final
    body = solution.rpartition("####")[0].strip()
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    plain = [_CALC.sub("", line) for line in lines]
    if regime == "cot":
        return "\n".join(plain + [final])
    long = text["long_cot"]
    out = ["<think>", rng.choice(long["openers"])]
    calcs = [i for i, line in enumerate(lines) if _CALC.search(line)]
    # One calculation is doubted and done again (GSM8K's lines have no sentence of the
    # generator's to misread); every equation written is true.
    doubt_at = rng.choice(calcs) if calcs else -1
    chain = []
    for i, (line, clean) in enumerate(zip(lines, plain)):
        calc = _CALC.search(line)
        out.append(clean)
        if calc is None:
            continue
        expr, value = calc.group(1).strip(), calc.group(2).strip()
        chain.append(f"{expr} = {value}")
        template = long["recheck"] if i == doubt_at else long["check"]
        out.append(fill(rng.choice(template), {"inverse": f"{expr} = {value}", "expr": expr,
                                               "value": value, "after": value}))
    if chain:
        out.append(fill(rng.choice(long["verify"]), {"chain": ", ".join(chain)}))
    out.append("</think>")
    return "\n".join(out + [final])


def gsm8k_examples(path: str, regime: str, count: int, seed: int,
                   ev: EvaluationSet) -> tuple[list[Example], int]:
    from ..loaders import load_from

    items = load_from("gsm8k", path)
    kept = [it for it in items if content_hash(it.prompt) not in ev.hashes]
    if not kept:
        raise SaferlabError(f"{path}: no GSM8K problem is left once evaluation items are "
                            "removed (is it the test split?)", EXIT_USAGE)
    rng = random.Random(f"gsm8k:{seed}")
    order = list(range(len(kept)))
    rng.shuffle(order)
    out = []
    for j in range(count):  # more than the file holds: cycle through it again
        item = kept[order[j % len(order)]]
        answer = gsm8k_solution(item.meta["solution"], str(item.answer), regime,
                                random.Random(f"gsm8k:{seed}:{j}"))
        out.append(Example("gsm8k", "reasoning", regime, (
            Message("user", item.prompt), Message("assistant", answer))))
    return out, len(items) - len(kept)


