"""Plain statistical functions. No dependencies beyond the standard library."""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Sequence

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and behaves at k = 0 and k = n,
    which small safety runs hit all the time.
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside 0..n={n}")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At the ends the bound is exact: k = 0 gives 0 and k = n gives 1, without float noise.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def _pair_lengths(a: Sequence, b: Sequence) -> int:
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    return len(a)


def percent_agreement(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Share of items on which two raters give the same label; None for no items."""
    n = _pair_lengths(a, b)
    if n == 0:
        return None
    return sum(bool(x) == bool(y) for x, y in zip(a, b)) / n


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa for two raters' binary labels on the same items (Cohen 1960).

    kappa = (p_o - p_e) / (1 - p_e), with p_e the agreement expected from each rater's own
    label rates. None for no items. When p_e is 1 (both raters gave one and the same label
    to every item) the ratio is 0/0; we return 1.0 for perfect observed agreement and 0.0
    otherwise, so that identical labels always read as full agreement.
    """
    n = _pair_lengths(a, b)
    if n == 0:
        return None
    agree = sum(bool(x) == bool(y) for x, y in zip(a, b))
    a1, b1 = sum(map(bool, a)), sum(map(bool, b))
    # In counts: p_o = agree / n and p_e = chance / n**2, so the ratio stays exact in integers.
    chance = a1 * b1 + (n - a1) * (n - b1)
    if chance == n * n:
        return 1.0 if agree == n else 0.0
    return (n * agree - chance) / (n * n - chance)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts b and c (McNemar 1947).

    Under the null each discordant pair falls either way with probability 1/2, so
    p = min(1, 2 * P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2). The tail is summed in
    integers and divided once, so it stays exact where floats would underflow (b + c in the
    thousands).
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail, term = 0, 1  # term = comb(n, k), updated in place of calling math.comb each step
    for k in range(min(b, c) + 1):
        tail += term
        term = term * (n - k) // (k + 1)
    return min(1.0, 2 * tail / 2**n)  # int / int is correctly rounded in Python


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    # Linear interpolation between order statistics (Hyndman and Fan's type 7, numpy's default).
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def paired_bootstrap_diff(a: Sequence[bool], b: Sequence[bool], n_resamples: int = 10_000,
                          seed: int = 0, confidence: float = 0.95,
                          ) -> tuple[float, float, float]:
    """mean(b) - mean(a) over paired items, with a percentile bootstrap interval (Efron 1979).

    Items are resampled with replacement, keeping each item's pair together; the interval is
    the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the resampled differences.
    Returns (diff, low, high); the same seed gives the same interval.
    """
    n = _pair_lengths(a, b)
    if n == 0:
        raise ValueError("paired_bootstrap_diff needs at least one item")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    diffs = [int(bool(y)) - int(bool(x)) for x, y in zip(a, b)]
    rng = random.Random(seed)
    # Drawing from the per-item differences is drawing item indices; sums stay integers.
    sums = sorted(sum(rng.choices(diffs, k=n)) for _ in range(n_resamples))
    alpha = (1 - confidence) / 2
    return (sum(diffs) / n, _quantile(sums, alpha) / n, _quantile(sums, 1 - alpha) / n)


def _doubled_ranks(values: Sequence[float]) -> list[int]:
    # Average ranks for ties, doubled so that half ranks stay integers: a tie over sorted
    # positions i..j (0-based) has rank (i + 1 + j + 1) / 2.
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = i + j + 2
        i = j + 1
    return ranks


def _pairing_sums(rx: Sequence[int], ry: Sequence[int]) -> dict[int, int]:
    """How many of the n! pairings of ry with rx give each value of sum(rx[i] * ry[pi(i)]).

    The same count as enumerating every permutation, by dynamic programming over the set of
    y ranks used so far: milliseconds at n = 10 instead of seconds.
    """
    n = len(rx)
    by_used: dict[int, dict[int, int]] = {0: {0: 1}}
    for x in rx:
        grown: dict[int, dict[int, int]] = {}
        for used, sums in by_used.items():
            for j, y in enumerate(ry):
                if used >> j & 1:
                    continue
                target = grown.setdefault(used | 1 << j, {})
                for s, count in sums.items():
                    target[s + x * y] = target.get(s + x * y, 0) + count
        by_used = grown
    return by_used[(1 << n) - 1]


def _betacf(a: float, b: float, x: float) -> float:
    # Continued fraction for the incomplete beta function, evaluated by the modified Lentz
    # method (Numerical Recipes, 3rd ed., section 6.4).
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (Numerical Recipes, section 6.4)."""
    if not 0 <= x <= 1:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0, 1):
        return float(x)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # The fraction converges fast only below the mean; above it use I_x(a, b) = 1 - I_1-x(b, a).
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2, 0.5, df / (df + t * t))


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman's rank correlation with average ranks for ties, and a two-sided p-value.

    r is Pearson's correlation of the ranks. For n <= 10 the p-value is exact: over all n!
    pairings of the y ranks (ties kept as they are) with the x ranks, twice the smaller tail
    at the observed r, capped at 1, as scipy's permutation_test and R's cor.test do. For
    n > 10 it uses t = r * sqrt((n - 2) / (1 - r^2)) with n - 2 degrees of freedom.
    (None, None) when n < 3 or either variable is constant.
    """
    n = _pair_lengths(x, y)
    if n < 3:
        return None, None
    rx, ry = _doubled_ranks(x), _doubled_ranks(y)
    sx, sy = sum(rx), sum(ry)
    sxx = n * sum(r * r for r in rx) - sx * sx
    syy = n * sum(r * r for r in ry) - sy * sy
    if sxx == 0 or syy == 0:
        return None, None
    sxy = sum(map(operator.mul, rx, ry))
    r = max(-1.0, min(1.0, (n * sxy - sx * sy) / math.sqrt(sxx * syy)))
    if n <= 10:
        counts = _pairing_sums(rx, ry)
        upper = sum(k for s, k in counts.items() if s >= sxy)
        lower = sum(k for s, k in counts.items() if s <= sxy)
        return r, min(1.0, 2 * min(upper, lower) / math.factorial(n))
    if abs(r) == 1.0:
        return r, 0.0
    return r, t_two_sided_p(r * math.sqrt((n - 2) / (1 - r * r)), n - 2)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices, in input order, of the points no other point dominates, larger being better
    on both axes: q dominates p when q >= p on both and q > p on at least one. Equal points
    do not dominate each other, so duplicates on the front all stay."""
    def dominates(q: tuple[float, float], p: tuple[float, float]) -> bool:
        return q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1])

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
