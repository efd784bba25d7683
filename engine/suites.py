"""Built-in suites: `harmful` (requests), `math` (a seeded generator) and `privacy` (synthetic
records planted in a system prompt). The data is in saferlab.prompts; this module turns it into
items and samples them."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from .errors import EXIT_USAGE, SaferlabError
from .library import load_toml
from .refs import Ref, fill
from .types import Item


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    kind: str
    file: str
    build: Callable[[Ref, int], list[Item]]

    @property
    def description(self) -> str:
        return load_toml(self.file).get("description", "")

    @property
    def citation(self) -> str:
        return load_toml(self.file).get("citation", "")


def _no_params(ref: Ref) -> None:
    if ref.params:
        raise SaferlabError(f"suite {ref.name!r} takes no parameters (got {ref.text!r})", EXIT_USAGE)


def build_harmful(ref: Ref, seed: int) -> list[Item]:
    _no_params(ref)
    data = load_toml("suites/harmful.toml")
    return [
        Item(key=f"harmful/{row['id']}", suite="harmful", kind="harmful", prompt=row["prompt"],
             category=row["category"], target=row.get("target"))
        for row in data["items"]
    ]


def build_privacy(ref: Ref, seed: int) -> list[Item]:
    # The people are fixed by the file's own seed, not the run's: the suite is the same data
    # in every run, and --seed only changes which items a --limit draws.
    _no_params(ref)
    data = load_toml("suites/privacy.toml")
    rng = random.Random(data["seed"])
    firsts = rng.sample(data["first_names"], data["people"])
    lasts = rng.sample(data["last_names"], data["people"])
    items: list[Item] = []
    for p, (first, last) in enumerate(zip(firsts, lasts), start=1):
        person = {
            "first": first,
            "name": f"{first} {last}",
            "email": f"{first}.{last}{rng.randint(10, 99)}@{rng.choice(data['domains'])}".lower(),
            "phone": f"555-01{rng.randint(0, 99):02d}",
            "patient_id": f"HSC-{rng.randint(100000, 999999)}",
            "birth_date": f"{rng.randint(1950, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        }
        system = fill(data["system"], person)
        for request in data["requests"]:
            field = request["field"]
            items.append(Item(
                key=f"privacy/p{p:02d}-{field}", suite="privacy", kind="privacy",
                prompt=fill(request["prompt"], person), category=field, system=system,
                secret=person[field], meta={"field": field, "person": person["name"]},
            ))
    return items


def _math_problem(rng: random.Random, data: dict[str, Any], steps: int) -> tuple[str, int]:
    name, things = rng.choice(data["names"]), rng.choice(data["objects"])
    value = rng.randint(6, 60)
    lines = [fill(data["start"], {"name": name, "n": value, "things": things})]
    ops = data["ops"]
    for _ in range(steps):
        divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value // d >= 2]
        choices = ["add"] + (["sub"] if value > 3 else []) + (["mul"] if value <= 200 else [])
        choices += ["div"] if divisors else []
        op = rng.choice(choices)
        if op == "add":
            n = rng.randint(2, 40)
            value += n
        elif op == "sub":
            n = rng.randint(1, value - 2)
            value -= n
        elif op == "mul":
            n = rng.randint(2, 4)
            value *= n
        else:
            n = rng.choice(divisors)
            value //= n
        values = {"name": name, "n": n, "m": n - 1, "things": things}
        lines.append(fill(rng.choice(ops[op]), values))
    lines.append(fill(data["question"], {"name": name, "things": things}))
    return " ".join(lines), value


def build_math(ref: Ref, seed: int) -> list[Item]:
    data = load_toml("suites/math.toml")
    unknown = set(ref.params) - {"n", "steps"}
    if unknown:
        raise SaferlabError(f"suite 'math' takes n and steps, not {', '.join(sorted(unknown))}", EXIT_USAGE)
    count = ref.int_param("n", data["default_count"], low=1)
    steps = ref.int_param("steps", data["default_steps"], low=1, high=12)
    items = []
    for i in range(count):
        # One generator per item: item i is the same whatever n is, so --limit draws a prefix.
        rng = random.Random(f"{seed}:{steps}:{i}")
        question, answer = _math_problem(rng, data, steps)
        items.append(Item(key=f"math/s{seed}-k{steps}-{i:04d}", suite="math", kind="math",
                          prompt=question, category=f"{steps}-step", answer=str(answer)))
    return items


SUITES: dict[str, SuiteInfo] = {
    s.name: s
    for s in (
        SuiteInfo("harmful", "harmful", "suites/harmful.toml", build_harmful),
        SuiteInfo("math", "math", "suites/math.toml", build_math),
        SuiteInfo("privacy", "privacy", "suites/privacy.toml", build_privacy),
    )
}


def load_suite(text: str, seed: int = 0) -> list[Item]:
    """All items of a suite reference such as ``harmful`` or ``math:steps=4,n=200``."""
    ref = Ref.parse(text)
    info = SUITES.get(ref.name)
    if info is None:
        raise SaferlabError(
            f"unknown suite {ref.name!r}; known suites: {', '.join(sorted(SUITES))}", EXIT_USAGE)
    return info.build(ref, seed)


def sample(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """``limit`` items drawn with ``seed``, spread evenly across categories, in suite order.

    Math items are generated per seed already, so their first ``limit`` are taken as they are.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    if all(item.kind == "math" for item in items):
        return items[:limit]
    rng = random.Random(seed)
    by_category: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_category[item.category].append(index)
    queues = []
    for category in sorted(by_category):
        indices = by_category[category][:]
        rng.shuffle(indices)
        queues.append(indices)
    rng.shuffle(queues)
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return [items[i] for i in sorted(chosen)]
