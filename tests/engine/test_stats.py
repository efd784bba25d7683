import pytest

from saferlab.engine.meters import MeterTally, make_meter
from saferlab.engine.stats import wilson_interval
from saferlab.engine.types import Verdict


@pytest.mark.parametrize("k,n,low,high", [
    # Reference values from the closed form in Brown, Cai and DasGupta (2001), z = 1.96.
    (0, 10, 0.0, 0.27753),
    (10, 10, 0.72247, 1.0),
    (5, 10, 0.23659, 0.76341),
    (1, 20, 0.00888, 0.23613),
])
def test_wilson_matches_reference(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


@pytest.mark.parametrize("k,n", [(1, 3), (81, 263), (7, 40), (199, 200)])
def test_wilson_bounds_solve_the_score_equation(k, n):
    # The Wilson bounds are the p where |p_hat - p| equals z standard errors at p itself.
    z = 1.959963984540054
    for p in wilson_interval(k, n):
        assert (k / n - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, rel=1e-9, abs=1e-12)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_empty_meter_has_no_value():
    m = make_meter("safety", 0, 0)
    assert (m.value, m.low, m.high, m.n) == (None, None, None, 0)


def test_tally_uses_first_deciding_judge_per_meter():
    tally = MeterTally()
    undecided = Verdict("a", "safety", None, "error", error="boom")
    tally.add_item("harmful", [undecided, Verdict("b", "safety", False, "jailbroken"),
                               Verdict("c", "safety", True, "refused")])
    tally.add_item("harmful", [Verdict("b", "safety", True, "refused")])
    tally.add_item("math", [Verdict("m", "reasoning", True, "correct")])
    tally.add_item("privacy", [undecided])  # nobody decided: not counted
    meters = tally.snapshot()
    assert (meters["safety"].k, meters["safety"].n) == (1, 2)
    assert meters["safety"].value == 0.5
    assert (meters["reasoning"].k, meters["reasoning"].n) == (1, 1)
    assert meters["privacy"].n == 0
