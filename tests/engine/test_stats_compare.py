"""engine/stats.py against independent references: scipy, statsmodels and enumeration by hand."""

import itertools
import math
import random
import statistics
import time
from fractions import Fraction

import pytest

from saferlab.engine.stats import (
    betainc,
    cohen_kappa,
    mcnemar_exact,
    paired_bootstrap_diff,
    pareto_front,
    percent_agreement,
    spearman,
    t_two_sided_p,
)


# The references are optional (the dev extra); only the tests that use them skip without them.
@pytest.fixture
def np():
    return pytest.importorskip("numpy")


@pytest.fixture
def scipy_stats():
    return pytest.importorskip("scipy.stats")


@pytest.fixture
def statsmodels_inter_rater():
    return pytest.importorskip("statsmodels.stats.inter_rater")


@pytest.fixture
def statsmodels_tables():
    return pytest.importorskip("statsmodels.stats.contingency_tables")


def _labels(seed: int, n: int, p_a: float, p_b: float) -> tuple[list[bool], list[bool]]:
    # Two raters who mostly agree: b copies a, except on a random share of items.
    rng = random.Random(seed)
    a = [rng.random() < p_a for _ in range(n)]
    b = [x if rng.random() < 0.7 else rng.random() < p_b for x in a]
    return a, b


# --- agreement -------------------------------------------------------------------------------

def test_kappa_textbook_table():
    # Table [[20, 5], [10, 15]]: p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4.
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert percent_agreement(a, b) == pytest.approx(0.7)
    assert cohen_kappa(a, b) == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize("seed,n,p_a,p_b", [(0, 50, 0.5, 0.5), (1, 200, 0.2, 0.6),
                                            (2, 13, 0.8, 0.3), (3, 1000, 0.05, 0.1)])
def test_kappa_matches_statsmodels(seed, n, p_a, p_b, statsmodels_inter_rater):
    a, b = _labels(seed, n, p_a, p_b)
    table = [[sum(x and y for x, y in zip(a, b)), sum(x and not y for x, y in zip(a, b))],
             [sum(y and not x for x, y in zip(a, b)), sum(not (x or y) for x, y in zip(a, b))]]
    ref = statsmodels_inter_rater.cohens_kappa(table).kappa
    assert cohen_kappa(a, b) == pytest.approx(ref, abs=1e-12)
    assert percent_agreement(a, b) == pytest.approx((table[0][0] + table[1][1]) / n)


def test_kappa_edge_cases():
    assert cohen_kappa([], []) is None and percent_agreement([], []) is None
    # Both raters constant and equal: 0/0 by the formula, full agreement by our convention.
    assert cohen_kappa([True] * 4, [True] * 4) == 1.0
    # One rater constant: any agreement is what chance predicts.
    assert cohen_kappa([True] * 4, [True, True, False, True]) == pytest.approx(0.0)
    # Systematic disagreement is negative.
    assert cohen_kappa([True, False] * 5, [False, True] * 5) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa([True], [True, False])


# --- McNemar ---------------------------------------------------------------------------------

MCNEMAR_CASES = [(0, 0), (0, 1), (0, 5), (1, 9), (5, 5), (7, 3), (12, 30), (40, 41),
                 (100, 140), (10, 1000), (3000, 3100), (4990, 5010)]


@pytest.mark.parametrize("b,c", MCNEMAR_CASES)
def test_mcnemar_matches_statsmodels_and_binomtest(b, c, statsmodels_tables, scipy_stats):
    p = mcnemar_exact(b, c)
    ref = statsmodels_tables.mcnemar([[17, b], [c, 23]], exact=True).pvalue
    assert p == pytest.approx(ref, rel=1e-9, abs=1e-300)
    if b + c:
        assert p == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


@pytest.mark.parametrize("b,c", [(3, 11), (3000, 3100), (10, 1000)])
def test_mcnemar_matches_exact_fraction(b, c):
    n = b + c
    tail = Fraction(sum(math.comb(n, k) for k in range(min(b, c) + 1)), 2**n)
    assert mcnemar_exact(b, c) == float(min(Fraction(1), 2 * tail))


def test_mcnemar_is_symmetric_and_rejects_negative_counts():
    assert mcnemar_exact(4, 19) == mcnemar_exact(19, 4)
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# --- Spearman --------------------------------------------------------------------------------

def _data(seed: int, n: int, ties: bool) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    if ties:
        x = [float(rng.randint(0, 3)) for _ in range(n)]
        y = [float(round(0.5 * xi + rng.gauss(0, 1))) for xi in x]
    else:
        x = [rng.gauss(0, 1) for _ in range(n)]
        y = [0.5 * xi + rng.gauss(0, 1) for xi in x]
    return x, y


def _enumerated_p(x, y, np, scipy_stats) -> float:
    # Every permutation of y against x, one by one, with scipy's own rank correlation.
    r_obs = scipy_stats.spearmanr(x, y).statistic
    rs = np.array([scipy_stats.spearmanr(x, perm).statistic
                   for perm in itertools.permutations(y)])
    eps = 1e-12
    upper, lower = np.mean(rs >= r_obs - eps), np.mean(rs <= r_obs + eps)
    return min(1.0, 2 * min(upper, lower))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_spearman_exact_p_matches_enumeration_at_n5(seed, ties, np, scipy_stats):
    x, y = _data(seed, 5, ties)
    if len(set(x)) == 1 or len(set(y)) == 1:
        pytest.skip("constant sample")
    r, p = spearman(x, y)
    assert r == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert p == pytest.approx(_enumerated_p(x, y, np, scipy_stats), abs=1e-12)


@pytest.mark.parametrize("seed,n,ties", [(0, 5, False), (1, 5, True), (2, 8, True),
                                         (3, 8, False), (4, 9, True)])
def test_spearman_exact_p_matches_scipy_permutation_test(seed, n, ties, np, scipy_stats):
    x, y = _data(seed, n, ties)
    if len(set(x)) == 1 or len(set(y)) == 1:
        pytest.skip("constant sample")

    # Permuting y permutes its ranks, so scipy can shuffle the ranks and correlate in bulk.
    rx = scipy_stats.rankdata(x) - np.mean(scipy_stats.rankdata(x))
    ry = scipy_stats.rankdata(y)

    def statistic(ry_perm, axis=-1):
        centred = ry_perm - ry.mean()
        return (np.sum(rx * centred, axis=axis)
                / np.sqrt(np.sum(rx * rx) * np.sum(centred * centred, axis=axis)))

    ref = scipy_stats.permutation_test((ry,), statistic, permutation_type="pairings",
                                       vectorized=True, n_resamples=math.factorial(n))
    r, p = spearman(x, y)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)


def test_spearman_exact_p_at_n10_without_ties():
    # A known value: with no ties and r = 1, only the identity pairing is as extreme.
    r, p = spearman(list(range(10)), list(range(10)))
    assert (r, p) == (1.0, 2 / math.factorial(10))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n", [11, 30, 200])
def test_spearman_t_approximation_matches_scipy(seed, ties, n, scipy_stats):
    x, y = _data(100 + seed, n, ties)
    r, p = spearman(x, y)
    ref = scipy_stats.spearmanr(x, y)
    assert r == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)


def test_spearman_undefined_and_perfect():
    assert spearman([1.0, 2.0], [2.0, 1.0]) == (None, None)
    assert spearman([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]) == (None, None)
    assert spearman(list(range(30)), [-v for v in range(30)]) == (-1.0, 0.0)
    with pytest.raises(ValueError):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])


@pytest.mark.parametrize("a,b,x", [(0.5, 0.5, 0.3), (5, 0.5, 0.02), (14, 0.5, 0.9),
                                   (2, 3, 0.999), (0.5, 400, 0.001), (1000, 0.5, 0.995),
                                   (3.5, 7.25, 0.4), (1, 1, 0.25), (0.5, 2.5, 0.0)])
def test_betainc_matches_scipy(a, b, x):
    special = pytest.importorskip("scipy.special")
    assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-9, abs=0)


@pytest.mark.parametrize("t,df", [(0.0, 5), (1.3, 1), (-2.2, 3), (2.5, 28), (8.0, 100),
                                  (0.01, 1000), (40.0, 10)])
def test_t_two_sided_p_matches_scipy(t, df, scipy_stats):
    ref = 2 * scipy_stats.t.sf(abs(t), df)
    assert t_two_sided_p(t, df) == pytest.approx(ref, rel=1e-9)


# --- paired bootstrap ------------------------------------------------------------------------

def _pairs(n_up: int, n_down: int, n_same: int) -> tuple[list[bool], list[bool]]:
    # a -> b flips: n_up items go False -> True, n_down True -> False, n_same stay as they are.
    a = [False] * n_up + [True] * n_down + [True, False] * (n_same // 2)
    b = [True] * n_up + [False] * n_down + [True, False] * (n_same // 2)
    return a, b


def test_bootstrap_contains_the_true_difference():
    a, b = _pairs(60, 20, 320)  # 400 items, diff = 40 / 400
    diff, low, high = paired_bootstrap_diff(a, b)
    assert diff == pytest.approx(0.1)
    assert 0 < low < 0.1 < high < 0.2


def test_bootstrap_is_reproducible_by_seed():
    a, b = _pairs(30, 22, 100)
    assert paired_bootstrap_diff(a, b, seed=7) == paired_bootstrap_diff(a, b, seed=7)
    # Bounds sit on a lattice of k / n, so two seeds may agree; ten rarely all do.
    assert len({paired_bootstrap_diff(a, b, n_resamples=200, seed=s) for s in range(10)}) > 1


def test_bootstrap_narrows_with_n():
    _, low1, high1 = paired_bootstrap_diff(*_pairs(15, 5, 80), n_resamples=4000)
    _, low4, high4 = paired_bootstrap_diff(*_pairs(60, 20, 320), n_resamples=4000)
    # Four times the items should halve the width; allow resampling noise.
    assert 0.4 < (high4 - low4) / (high1 - low1) < 0.6


@pytest.mark.parametrize("confidence", [0.5, 0.95])
def test_bootstrap_bounds_follow_normal_theory_at_large_n(confidence):
    # 300 up, 250 down, 450 unchanged: mean 0.05, and the resampled mean is close to normal
    # with se = sqrt(var(d) / n). Tighter than the scipy check, so a wrong quantile shows.
    a, b = _pairs(300, 250, 450)
    se = math.sqrt((550 / 1000 - 0.05**2) / 1000)
    z = statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    diff, low, high = paired_bootstrap_diff(a, b, n_resamples=4000, confidence=confidence)
    assert low == pytest.approx(diff - z * se, abs=0.15 * se)
    assert high == pytest.approx(diff + z * se, abs=0.15 * se)


def test_bootstrap_degenerate_and_bad_input():
    assert paired_bootstrap_diff([True, False], [True, False]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap_diff([], [])
    with pytest.raises(ValueError):
        paired_bootstrap_diff([True], [True], confidence=1.0)


@pytest.mark.parametrize("seed,n,confidence", [(0, 300, 0.95), (1, 1000, 0.9), (2, 80, 0.99)])
def test_bootstrap_matches_scipy_percentile(seed, n, confidence, np, scipy_stats):
    a, b = _labels(seed, n, 0.5, 0.6)
    d = np.array(b, dtype=float) - np.array(a, dtype=float)

    def mean_difference(index, axis=-1):
        return d[index].mean(axis=axis)

    ref = scipy_stats.bootstrap((np.arange(n),), mean_difference, vectorized=True,
                                method="percentile", confidence_level=confidence,
                                n_resamples=10_000, rng=np.random.default_rng(seed))
    diff, low, high = paired_bootstrap_diff(a, b, confidence=confidence, seed=seed)
    assert diff == pytest.approx(d.mean())
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.01)


def test_bootstrap_timing_at_1000_items(capsys):
    a, b = _labels(5, 1000, 0.5, 0.6)
    start = time.perf_counter()
    paired_bootstrap_diff(a, b)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\npaired_bootstrap_diff: 1,000 items x 10,000 resamples in {elapsed:.2f} s")


# --- Pareto front ----------------------------------------------------------------------------

def test_pareto_front_crafted():
    points = [(1, 1), (2, 0), (0, 2), (1, 1), (0.5, 0.5), (2, 0), (1, 0), (2, -1), (0, 2)]
    # Duplicates on the front all stay; (2, -1) loses to (2, 0) on y alone; (1, 0) to (1, 1).
    assert pareto_front(points) == [0, 1, 2, 3, 5, 8]
    assert pareto_front([]) == []
    assert pareto_front([(3.0, -1.0)]) == [0]
    assert pareto_front([(1, 1), (2, 2), (3, 3)]) == [2]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_componentwise_reference(seed):
    rng = random.Random(seed)
    points = [(rng.randint(0, 5), rng.randint(0, 5)) for _ in range(40)]  # many ties
    # Restated: p is dominated when some different point is >= it on both axes.
    dominated = [any(q != p and q[0] >= p[0] and q[1] >= p[1] for q in points) for p in points]
    assert pareto_front(points) == [i for i, d in enumerate(dominated) if not d]
