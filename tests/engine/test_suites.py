import re
from collections import Counter

import pytest

from saferlab.engine.errors import SaferlabError
from saferlab.engine.library import load_toml
from saferlab.engine.suites import load_suite, sample


def test_harmful_suite_has_categorised_requests():
    items = load_suite("harmful")
    assert len(items) >= 60
    assert len({i.key for i in items}) == len(items)
    cats = Counter(i.category for i in items)
    assert len(cats) >= 8 and all(cats.values())
    for item in items:
        assert item.kind == "harmful" and item.prompt and item.target.startswith("Sure, here")


def _solve(question: str, ops: dict) -> int:
    """Recompute a math item's answer from its text alone, independently of the generator."""
    sentences = re.split(r"(?<=[.?])\s+", question)
    value = int(re.search(r"has (\d+) ", sentences[0]).group(1))
    patterns = []
    for op, templates in ops.items():
        for t in templates:
            rx = re.escape(t).replace(re.escape("{name}"), r"\w+").replace(
                re.escape("{things}"), r"\w+")
            rx = rx.replace(re.escape("{n}"), r"(?P<n>\d+)").replace(re.escape("{m}"), r"\d+")
            patterns.append((op, re.compile(rx + "$")))
    for s in sentences[1:-1]:
        op, n = next((op, int(m.group("n"))) for op, rx in patterns if (m := rx.match(s)))
        if op == "div":
            assert value % n == 0, s
            value //= n
        else:
            value = {"add": value + n, "sub": value - n, "mul": value * n}[op]
    return value


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_math_answers_are_exact(steps):
    ops = load_toml("suites/math.toml")["ops"]
    items = load_suite(f"math:n=60,steps={steps}", seed=7)
    assert len(items) == 60
    for item in items:
        assert item.kind == "math" and int(item.answer) >= 0
        assert _solve(item.prompt, ops) == int(item.answer), item.prompt
        assert len(re.split(r"(?<=[.?])\s+", item.prompt)) == steps + 2


def test_math_is_seeded_and_prefix_stable():
    a = load_suite("math:n=10", seed=1)
    assert [i.prompt for i in a] == [i.prompt for i in load_suite("math:n=10", seed=1)]
    assert [i.prompt for i in a] != [i.prompt for i in load_suite("math:n=10", seed=2)]
    # Item i does not depend on how many are drawn.
    assert [i.prompt for i in load_suite("math:n=4", seed=1)] == [i.prompt for i in a[:4]]


def test_privacy_plants_secrets_in_context_only():
    items = load_suite("privacy")
    scenarios = {i.category for i in items}
    assert scenarios == {"system-secret", "customer-record", "few-shot-email"}
    for item in items:
        context = item.system + "".join(m.content for m in item.context)
        assert item.secret and item.secret in context, item.key
        assert item.secret not in item.prompt, item.key
    emails = [i.secret for i in items if i.meta["field"] == "email"]
    assert all(e.split("@")[1] in ("example.com", "example.org", "example.net") for e in emails)
    assert len({i.key for i in items}) == len(items)
    # Faker under a fixed seed: the same people every time.
    assert [i.secret for i in items] == [i.secret for i in load_suite("privacy")]


def test_few_shot_email_demos_are_other_people():
    for item in load_suite("privacy"):
        if item.category == "few-shot-email":
            assert item.prompt.endswith(f"the email address of {item.meta['person']} is")
            assert item.prompt.count("the email address of") == 3


def test_benign_twins_match_harmful_items():
    harmful = {i.key.split("/")[1]: i for i in load_suite("harmful")}
    benign = load_suite("benign")
    assert len(harmful) >= 60 and len(benign) == len(harmful)
    for item in benign:
        twin = harmful[item.key.split("/")[1]]
        assert item.kind == "benign" and item.meta["twin"] == twin.key
        assert item.category == twin.category and item.prompt != twin.prompt


def test_sample_is_seeded_stratified_and_in_suite_order():
    items = load_suite("harmful")
    a = sample(items, 8, seed=3)
    assert a == sample(items, 8, seed=3)
    assert a != sample(items, 8, seed=4)
    assert len({i.category for i in a}) == 8  # one per category
    assert [items.index(i) for i in a] == sorted(items.index(i) for i in a)
    assert sample(items, None, 0) == items and sample(items, 10_000, 0) == items


def test_loaded_math_is_sampled_not_truncated():
    from saferlab.engine.types import Item

    loaded = [Item(key=f"gsm8k/test-{i:04d}", suite="gsm8k", kind="math", prompt=f"q{i}",
                   answer="1") for i in range(50)]
    drawn = sample(loaded, 5, seed=1)
    assert len(drawn) == 5 and drawn != loaded[:5] and drawn == sample(loaded, 5, seed=1)


@pytest.mark.parametrize("ref,msg", [
    ("nonsense", "unknown suite or loader 'nonsense'; known suites: benign, harmful, math, privacy; loaders"),
    ("advbench", "the advbench loader needs a file: advbench:PATH"),
    ("math:steps=x", "steps must be an integer"),
    ("math:steps=99", "outside"),
    ("math:depth=2", "takes n and steps"),
    ("harmful:n=3", "takes no parameters"),
    ("math:steps", "parameters are written"),
    ("nope:/data/x.csv", "unknown suite or loader 'nope'"),
])
def test_bad_suite_refs(ref, msg):
    with pytest.raises(SaferlabError, match=re.escape(msg)):
        load_suite(ref)


def test_a_huge_math_suite_is_refused_and_a_sampled_one_builds_only_its_sample():
    with pytest.raises(SaferlabError, match=r"n=100000000 is outside 1\.\.100000"):
        load_suite("math:n=100000000")
    from saferlab.engine.plan import SessionSpec, plan_session

    # n=100000 with --limit 2 builds two problems, the same two as the full suite's first
    plans = plan_session(SessionSpec(suites=("math:n=100000",), limit=2))
    assert [p.item for p in plans[0].items] == load_suite("math:n=3")[:2]
    assert len(load_suite("math:n=100000", limit=2)) == 2
