"""steper.report.stats on constructed scores whose answer is known by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap

from steper.report.stats import (
    N_RESAMPLES,
    RANDOM_STATE,
    mean_interval,
    paired_difference,
    pooled_test,
    seed_interval,
    significant,
)


def _scores(right: set[int], n: int = 200, start: int = 0) -> dict[str, float]:
    return {f"q{i}": float(i in right) for i in range(start, start + n)}


@pytest.fixture(autouse=True)
def no_warnings():
    """Degenerate data must give an answer, not a RuntimeWarning or a NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_identical_runs_difference_zero_ci_zero_p_one():
    a = _scores(set(range(0, 200, 3)))
    res = paired_difference(a, dict(a))
    assert res is not None
    assert (res.n, res.difference, res.ci, res.p) == (200, 0.0, (0.0, 0.0), 1.0)
    assert (res.test, res.b_better, res.a_better) == ("McNemar (exact)", 0, 0)
    assert not significant(res.ci, res.p)


def test_right_on_20_more_of_200_rejects():
    """A right on 100, B right on the same 100 and 20 more: McNemar's table has 20 discordant
    pairs all one way, p = 2 · 0.5^20 exactly."""
    a = _scores(set(range(100)))
    b = _scores(set(range(120)))
    res = paired_difference(a, b)
    assert res is not None
    assert (res.n, res.b_better, res.a_better) == (200, 20, 0)
    assert res.difference == pytest.approx(0.10)
    assert res.test == "McNemar (exact)"
    assert res.p == pytest.approx(2 * 0.5**20) and res.p < 0.05
    assert res.ci is not None and 0 < res.ci[0] < 0.10 < res.ci[1]
    assert significant(res.ci, res.p)
    # unpaired, the two runs' own CIs overlap: pairing on the questions is what resolves it
    lo_b = mean_interval(list(b.values()))[0]
    hi_a = mean_interval(list(a.values()))[1]
    assert lo_b < hi_a
    # the other way round, the same p and the mirrored difference
    back = paired_difference(b, a)
    assert back.difference == pytest.approx(-0.10) and back.p == res.p
    assert back.ci[1] < 0


def test_discordance_both_ways_is_the_exact_binomial_and_small_gaps_stay_in_the_noise():
    # A right on q0-q104; B on q0-q4, q10-q99, q105-q124: B better on 20, A better on 10
    a = _scores(set(range(105)))
    b = _scores(set(range(5)) | set(range(10, 100)) | set(range(105, 125)))
    res = paired_difference(a, b)
    assert (res.b_better, res.a_better) == (20, 10)
    assert res.difference == pytest.approx(0.05)
    assert res.p == pytest.approx(binomtest(20, 30, 0.5).pvalue)  # 0.099: ten more, but not settled
    assert not significant(res.ci, res.p)
    # 10 vs 8 discordant: nothing to see
    a = _scores(set(range(50)) | set(range(100, 108)))
    b = _scores(set(range(50)) | set(range(150, 160)))
    res = paired_difference(a, b)
    assert (res.b_better, res.a_better) == (10, 8)
    assert res.p > 0.5 and res.ci[0] < 0 < res.ci[1] and not significant(res.ci, res.p)


def test_paired_bootstrap_is_scipys_paired_bootstrap():
    """Bootstrapping the differences is scipy's bootstrap(paired=True) of mean(b − a): same
    indices, same interval."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2, 60).astype(float)
    b = np.where(rng.random(60) < 0.3, 1.0, a)
    res = paired_difference({str(i): v for i, v in enumerate(a)}, {str(i): v for i, v in enumerate(b)})
    # qids sort as strings ("0", "1", "10", ...): put scipy's arrays in that order too
    order = sorted(range(60), key=str)
    ref = bootstrap(
        (a[order], b[order]),
        lambda x, y, axis=-1: np.mean(y - x, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=N_RESAMPLES,
        method="BCa",
        random_state=np.random.default_rng(RANDOM_STATE),
    ).confidence_interval
    assert res.ci == pytest.approx((ref.low, ref.high))


def test_f1_uses_the_exact_sign_test_on_untied_pairs():
    a = {f"q{i}": 0.5 for i in range(30)}
    b = {f"q{i}": (0.8 if i < 12 else 0.5 if i < 27 else 0.2) for i in range(30)}  # 12 up, 3 down, 15 ties
    res = paired_difference(a, b)
    assert res.test == "sign test (exact)"
    assert (res.b_better, res.a_better) == (12, 3)
    assert res.p == pytest.approx(binomtest(12, 15, 0.5).pvalue)
    assert res.difference == pytest.approx((12 * 0.3 - 3 * 0.3) / 30)
    tied = paired_difference(a, dict(a))
    assert (tied.test, tied.p, tied.ci) == ("sign test (exact)", 1.0, (0.0, 0.0))


def test_mismatched_questions_are_paired_on_the_intersection():
    a = _scores(set(range(100)), n=200)  # q0..q199
    b = _scores(set(range(100)), n=200, start=10)  # q10..q209: q10..q99 right
    res = paired_difference(a, b)
    assert res.n == 190
    assert res.difference == 0.0 and res.p == 1.0  # on q10..q199 they agree
    assert paired_difference({"x": 1.0}, {"y": 1.0}) is None


def test_degenerate_intervals():
    assert mean_interval([0.0] * 50) == (0.0, 0.0)
    assert mean_interval([1.0] * 50) == (1.0, 1.0)
    assert mean_interval([1.0]) is None and mean_interval([]) is None
    lo, hi = mean_interval([0.0] * 49 + [1.0])  # one right of 50: skewed, BCa still finite
    assert math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= 0.02 <= hi <= 0.1
    assert mean_interval([0.0, 1.0]) is not None


def test_mean_interval_is_reproducible():
    values = [float(i % 3 == 0) for i in range(120)]
    first = mean_interval(values)
    assert mean_interval(list(values)) == first  # fixed random state (and the cache)
    assert mean_interval(values, n_resamples=1999) == mean_interval(values, n_resamples=1999)


def test_mean_interval_covers_the_true_rate():
    """Coverage sanity: of 200 samples of 100 Bernoulli(0.3) questions, about 95% of the
    intervals hold 0.3 (binomial sd of the share at 200 trials: 1.5 points)."""
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(200):
        lo, hi = mean_interval((rng.random(100) < 0.3).astype(float).tolist(), n_resamples=999)
        hits += lo <= 0.3 <= hi
    assert 0.90 <= hits / 200 <= 0.99
    # a rate 4.4 standard errors away is almost never inside (the interval is not just wide)
    rng = np.random.default_rng(12)
    wrong = 0
    for _ in range(50):
        lo, hi = mean_interval((rng.random(100) < 0.3).astype(float).tolist(), n_resamples=999)
        wrong += lo <= 0.5 <= hi
    assert wrong <= 2


def test_seed_interval_by_hand():
    s = seed_interval([57.0, 58.0, 59.0])  # std 1, t(0.975, 2) = 4.302653
    assert (s.n, s.mean, s.std) == (3, 58.0, 1.0)
    assert s.ci == pytest.approx((58 - 4.302653 / math.sqrt(3), 58 + 4.302653 / math.sqrt(3)))
    assert seed_interval([5.0]).ci is None and seed_interval([5.0]).std is None
    assert seed_interval([3.0, 3.0, 3.0]).ci == (3.0, 3.0)
    with pytest.raises(ValueError):
        seed_interval([])


def test_pooled_test_counts_every_question_and_seed():
    a = [0.0] * 10 + [1.0] * 10
    b = [1.0] * 4 + [0.0] * 6 + [1.0] * 10  # 4 discordant for B per seed
    name, p, b_better, a_better = pooled_test([(a, b), (a, b), (a, b)])
    assert (name, b_better, a_better) == ("McNemar (exact)", 12, 0)
    assert p == pytest.approx(2 * 0.5**12)
