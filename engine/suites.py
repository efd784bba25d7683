"""Suites: the built-in `harmful` and `benign` (static files), `math` (a seeded generator) and
`privacy` (synthetic people in context); the user's own suite files; and file loaders
(loaders.py). This module turns them into items and samples them."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import EXIT_USAGE, SaferlabError
from .library import BUILTIN, USER, load_toml, load_user_toml
from .paths import user_prompts_dir
from .refs import Ref, fill
from .types import Item


KINDS = ("harmful", "benign", "math", "privacy")


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    kind: str
    file: str  # a data file of saferlab.prompts, or the path of a user's suite file
    # (reference, seed, limit): a generator builds no more than the ``limit`` a run samples
    build: Callable[[Ref, int, int | None], list[Item]]
    source: str = BUILTIN

    def _data(self) -> dict[str, Any]:
        return load_toml(self.file) if self.source == BUILTIN else load_user_toml(Path(self.file))

    @property
    def description(self) -> str:
        return self._data().get("description", "")

    @property
    def citation(self) -> str:
        return self._data().get("citation", "")


def _no_params(ref: Ref) -> None:
    if ref.params:
        raise SaferlabError(f"suite {ref.name!r} takes no parameters (got {ref.text!r})", EXIT_USAGE)


def static_items(name: str, data: dict[str, Any], where: str) -> list[Item]:
    """Items of a suite file in the static format: a top-level `kind` and [[items]] with an
    `id` and a `prompt` each (optionally category, target, answer, secret, system)."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise SaferlabError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}",
                            EXIT_USAGE)
    rows = data.get("items")
    if not isinstance(rows, list) or not rows:
        raise SaferlabError(f"{where}: no [[items]]", EXIT_USAGE)
    items = []
    seen: dict[str, int] = {}  # id -> item number
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise SaferlabError(f"{where}: item {n} must be a table ([[items]]), not "
                                f"{type(row).__name__}", EXIT_USAGE)
        for field in ("prompt", "category", "system", "secret", "target", "twin"):
            if row.get(field) is not None and not isinstance(row[field], str):
                raise SaferlabError(f"{where}: item {n}: {field} must be text, not "
                                    f"{type(row[field]).__name__}", EXIT_USAGE)
        needed = ("id", "prompt", "answer") if kind == "math" else ("id", "prompt")
        missing = [f for f in needed if not str(row.get(f, "")).strip()]
        if missing:
            raise SaferlabError(f"{where}: item {n} has no {' or '.join(missing)}", EXIT_USAGE)
        if str(row["id"]) in seen:  # keys pair items across runs: one id, one item
            raise SaferlabError(f"{where}: item {n} has the id {row['id']!r} of item "
                                f"{seen[str(row['id'])]}", EXIT_USAGE)
        seen[str(row["id"])] = n
        answer = row.get("answer")
        items.append(Item(
            key=f"{name}/{row['id']}", suite=name, kind=kind, prompt=row["prompt"],
            category=row.get("category", ""), system=row.get("system", ""),
            answer=None if answer is None else str(answer), secret=row.get("secret"),
            target=row.get("target"), meta={"twin": row["twin"]} if row.get("twin") else {}))
    return items


def _static(name: str) -> Callable[[Ref, int, int | None], list[Item]]:
    def build(ref: Ref, seed: int, limit: int | None = None) -> list[Item]:
        _no_params(ref)
        return static_items(name, load_toml(f"suites/{name}.toml"), f"suites/{name}.toml")
    return build


def _user_static(name: str, path: Path) -> Callable[[Ref, int, int | None], list[Item]]:
    def build(ref: Ref, seed: int, limit: int | None = None) -> list[Item]:
        _no_params(ref)
        return static_items(name, load_user_toml(path), str(path))
    return build


def build_privacy(ref: Ref, seed: int, limit: int | None = None) -> list[Item]:
    # The people are fixed by the file's own seed, not the run's: the suite is the same data
    # in every run, and --seed only changes which items a --limit draws.
    _no_params(ref)
    from .privacy_suite import build_privacy as build

    return build()


@dataclass(frozen=True)
class MathStep:
    """One operation of a generated problem: its sentence, and the arithmetic it stands for."""

    sentence: str
    op: str  # "add", "sub", "mul" or "div"
    operand: int
    before: int
    after: int


@dataclass(frozen=True)
class MathProblem:
    question: str
    answer: int
    name: str
    things: str
    start: int
    steps: tuple[MathStep, ...]


def math_problem(rng: random.Random, steps: int) -> MathProblem:
    """A word problem of ``steps`` operations drawn with ``rng``, with its worked steps (the
    fine-tuning data builds chains of thought from them)."""
    data = load_toml("suites/math.toml")
    name, things = rng.choice(data["names"]), rng.choice(data["objects"])
    value = rng.randint(6, 60)
    start = value
    opening = fill(data["start"], {"name": name, "n": value, "things": things})
    ops = data["ops"]
    worked: list[MathStep] = []
    for _ in range(steps):
        divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value // d >= 2]
        choices = ["add"] + (["sub"] if value > 3 else []) + (["mul"] if value <= 200 else [])
        choices += ["div"] if divisors else []
        op = rng.choice(choices)
        before = value
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
        worked.append(MathStep(fill(rng.choice(ops[op]), values), op, n, before, value))
    question = fill(data["question"], {"name": name, "things": things})
    text = " ".join([opening, *(s.sentence for s in worked), question])
    return MathProblem(text, value, name, things, start, tuple(worked))


MATH_MAX_COUNT = 100_000  # problems one math suite reference may ask for


def build_math(ref: Ref, seed: int, limit: int | None = None) -> list[Item]:
    """``n`` problems (only the first ``limit`` are built when a run samples that many)."""
    data = load_toml("suites/math.toml")
    unknown = set(ref.params) - {"n", "steps"}
    if unknown:
        raise SaferlabError(f"suite 'math' takes n and steps, not {', '.join(sorted(unknown))}", EXIT_USAGE)
    count = ref.int_param("n", data["default_count"], low=1, high=MATH_MAX_COUNT)
    steps = ref.int_param("steps", data["default_steps"], low=1, high=12)
    items = []
    for i in range(count if limit is None else min(count, limit)):
        # One generator per item: item i is the same whatever n is, so --limit draws a prefix.
        rng = random.Random(f"{seed}:{steps}:{i}")
        problem = math_problem(rng, steps)
        items.append(Item(key=f"math/s{seed}-k{steps}-{i:04d}", suite="math", kind="math",
                          prompt=problem.question, category=f"{steps}-step",
                          answer=str(problem.answer)))
    return items


BUILTIN_SUITES: dict[str, SuiteInfo] = {
    s.name: s
    for s in (
        SuiteInfo("harmful", "harmful", "suites/harmful.toml", _static("harmful")),
        SuiteInfo("benign", "benign", "suites/benign.toml", _static("benign")),
        SuiteInfo("math", "math", "suites/math.toml", build_math),
        SuiteInfo("privacy", "privacy", "suites/privacy.toml", build_privacy),
    )
}


def suites() -> dict[str, SuiteInfo]:
    """Built-in suites, then the user's suite files ($SAFERLAB_HOME/prompts/suites/*.toml)."""
    out = dict(BUILTIN_SUITES)
    folder = user_prompts_dir() / "suites"
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            name = path.stem
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # ':' names a loader
                raise SaferlabError(f"{path}: a suite's file name holds letters, digits, '.', "
                                    "'_' and '-' only (it is the name --suite takes); rename it",
                                    EXIT_USAGE)
            if name in out:
                raise SaferlabError(f"{path} is named like the built-in suite {name!r}; "
                                    "rename it", EXIT_USAGE)
            kind = load_user_toml(path).get("kind", "")
            out[name] = SuiteInfo(name, kind, str(path), _user_static(name, path), USER)
    return out


def load_suite(text: str, seed: int = 0, limit: int | None = None) -> list[Item]:
    """All items of a suite reference: ``harmful``, ``math:steps=4,n=200``, or a loader with
    a file, ``advbench:PATH``. ``limit``: a run samples that many, so a generator (whose
    sample is its prefix) builds no more."""
    from .loaders import LOADERS, load_from

    name, sep, rest = text.strip().partition(":")
    if name in LOADERS:
        if not rest:
            raise SaferlabError(f"the {name} loader needs a file: {name}:PATH", EXIT_USAGE)
        return load_from(name, rest)
    known = suites()
    if name.strip() not in known:  # before its parameters are read: nope:PATH is a name error
        raise SaferlabError(
            f"unknown suite or loader {name.strip()!r}; known suites: {', '.join(sorted(known))}; "
            f"loaders (NAME:PATH): {', '.join(LOADERS)}", EXIT_USAGE)
    ref = Ref.parse(text)
    return known[ref.name].build(ref, seed, limit)


def suite_files(refs: tuple[str, ...]) -> list[str]:
    """The built-in data files that these suite references read, for the run's hashes."""
    names = {r.partition(":")[0].strip() for r in refs}
    return [BUILTIN_SUITES[n].file for n in sorted(names) if n in BUILTIN_SUITES]


def sample(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """``limit`` items drawn with ``seed``, spread evenly across categories, in suite order.

    Generated math items depend on the seed already, so their first ``limit`` are taken.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    if all(item.suite == "math" for item in items):
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
