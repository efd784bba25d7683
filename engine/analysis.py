"""Analyses over stored outcomes: agreement between judges, paired comparison of two runs, and
the reasoning-safety trade-off across runs. Plain data in, plain data out; db/ loads it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .meters import COUNTS_FAILURES, METERS, make_meter
from .stats import (cohen_kappa, mcnemar_exact, paired_bootstrap_diff, pareto_front,
                    percent_agreement, spearman, wilson_interval)

# Outcomes: {meter: {item_key: passed}} where passed is the good side (safe, correct, kept,
# answered) as in Verdict.passed.
Outcomes = dict[str, dict[str, bool]]

FLIP_WORDS = {
    "safety": ("safe", "unsafe"),
    "reasoning": ("correct", "wrong"),
    "privacy": ("kept", "leaked"),
    "over_refusal": ("answered", "refused"),
}


@dataclass
class PairAgreement:
    meter: str
    judge_a: str
    judge_b: str
    n: int
    percent: float | None
    kappa: float | None
    contested: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(by_judge: dict[str, dict[str, dict[str, bool]]]) -> list[PairAgreement]:
    """For each meter, each pair of judges over the items both decided: percent agreement,
    Cohen's kappa and the contested items (where they disagree). ``by_judge[meter][judge]``
    maps item keys to decisions."""
    out = []
    for meter, judges in by_judge.items():
        names = list(judges)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                keys = [k for k in judges[a] if k in judges[b]]
                xs, ys = [judges[a][k] for k in keys], [judges[b][k] for k in keys]
                contested = [k for k in keys if judges[a][k] != judges[b][k]]
                out.append(PairAgreement(meter, a, b, len(keys), percent_agreement(xs, ys),
                                         cohen_kappa(xs, ys), contested))
    return out


def _value(meter: str, passed: list[bool]) -> float | None:
    if not passed:
        return None
    good = sum(passed)
    return (len(passed) - good) / len(passed) if meter in COUNTS_FAILURES else good / len(passed)


@dataclass
class MeterComparison:
    meter: str
    paired: bool
    n_a: int
    n_b: int
    a: float | None
    b: float | None
    diff: float | None  # b - a, in the meter's own direction
    low: float | None
    high: float | None
    p_value: float | None
    test: str
    flips: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p2 - p1 (independent samples)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p2 - p1
    return (d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2),
            d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2))


def _two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(k2 / n2 - k1 / n1) / se
    return math.erfc(z / math.sqrt(2))


def compare_meter(meter: str, a: dict[str, bool], b: dict[str, bool], seed: int = 0,
                  resamples: int = 10_000) -> MeterComparison:
    """Run B against run A on one meter. Over the same items: a McNemar exact test on the
    discordant pairs and a paired bootstrap 95% interval of the difference, with the items
    that flipped. Over different items: unpaired (Newcombe interval, two-proportion z test)."""
    flip = meter in COUNTS_FAILURES
    common = [k for k in a if k in b]
    paired = bool(common) and len(common) == len(a) == len(b)
    if paired:
        xa = [a[k] != flip for k in common]  # in the meter's direction: True counts toward it
        xb = [b[k] != flip for k in common]
        good, bad = FLIP_WORDS.get(meter, ("pass", "fail"))
        flips = {f"{good} to {bad}": [k for k in common if a[k] and not b[k]],
                 f"{bad} to {good}": [k for k in common if not a[k] and b[k]]}
        discordant_b = sum(1 for x, y in zip(xa, xb) if x and not y)
        discordant_c = sum(1 for x, y in zip(xa, xb) if not x and y)
        diff, low, high = paired_bootstrap_diff(xa, xb, n_resamples=resamples, seed=seed)
        return MeterComparison(meter, True, len(common), len(common), sum(xa) / len(xa),
                               sum(xb) / len(xb), diff, low, high,
                               mcnemar_exact(discordant_b, discordant_c), "mcnemar-exact", flips)
    va, vb = _value(meter, list(a.values())), _value(meter, list(b.values()))
    if va is None or vb is None:
        return MeterComparison(meter, False, len(a), len(b), va, vb, None, None, None, None,
                               "none")
    ka, kb = round(va * len(a)), round(vb * len(b))
    low, high = _newcombe(ka, len(a), kb, len(b))
    return MeterComparison(meter, False, len(a), len(b), va, vb, vb - va, low, high,
                           _two_proportion_p(ka, len(a), kb, len(b)), "two-proportion-z")


def compare_runs(a: Outcomes, b: Outcomes, seed: int = 0) -> list[MeterComparison]:
    return [compare_meter(m, a.get(m, {}), b.get(m, {}), seed) for m in METERS
            if a.get(m) or b.get(m)]


@dataclass
class TradeoffRow:
    run_id: int
    label: str
    meters: dict[str, dict[str, Any]]
    pareto: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tradeoff(runs: list[tuple[int, str, Outcomes]]) -> dict[str, Any]:
    """Each run's meters with intervals, the Pareto front on (reasoning, safety), and the
    Spearman rank correlation between reasoning accuracy and safety across runs."""
    rows = []
    for run_id, label, outcomes in runs:
        meters = {}
        for meter in METERS:
            decided = list(outcomes.get(meter, {}).values())
            k = sum(decided) if meter not in COUNTS_FAILURES else len(decided) - sum(decided)
            meters[meter] = make_meter(meter, k, len(decided)).to_dict()
        rows.append(TradeoffRow(run_id, label, meters))
    both = [r for r in rows if r.meters["reasoning"]["n"] and r.meters["safety"]["n"]]
    points = [(r.meters["reasoning"]["value"], r.meters["safety"]["value"]) for r in both]
    for i in pareto_front(points):
        both[i].pareto = True
    rho, p = spearman([x for x, _ in points], [y for _, y in points]) if len(points) >= 3 else (None, None)
    return {"runs": [r.to_dict() for r in rows],
            "pareto": [r.run_id for r in both if r.pareto],
            "spearman": {"rho": rho, "p_value": p, "n": len(points)}}
