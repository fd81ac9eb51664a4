"""The statistics behind every compared number: confidence intervals and exact paired tests.

Pure functions on per-question scores (em / acc: 0 or 1; f1: in [0, 1]) and per-seed values; they
return results in the units they are given and know nothing about runs or tables
(`steper.report.paired` applies them to runs).

- `mean_interval`: a bootstrap 95% CI of the mean over test questions (scipy's `bootstrap`, BCa,
  9999 resamples, a fixed random state so a report is reproducible).
- `paired_difference`: the difference B − A on the questions both runs answered, a paired
  bootstrap CI, and an exact paired test: McNemar's (statsmodels, exact=True) for 0/1 scores, the
  sign test (scipy's `binomtest` on the pairs that differ) otherwise. Both are exact binomial tests
  on the discordant pairs, so they need no large-sample approximation.
- `seed_interval`: mean, sample std and a t-interval over seeds (scipy's t distribution).
- `pooled_test`: the exact test on the question × seed pairs of several seeds together.

Degenerate data (every value equal: all wrong, all right, identical runs) gives a zero-width
interval at that value, never NaN and never a warning: the bootstrap cannot see past the values
it resamples, so [0, 0] for a run that got every question wrong is what it says, not a claim that
the true rate is exactly 0.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
N_RESAMPLES = 9999  # scipy's default
RANDOM_STATE = 0
# values held in memory per bootstrap batch: 9999 resamples of a 7,405-question dev set at once
# would be 600 MB
_BATCH_VALUES = 5_000_000

Interval = tuple[float, float]


@dataclass(frozen=True)
class PairedResult:
    """B − A on `n` common questions: the mean difference, its CI, and the exact paired test.

    `b_better` / `a_better`: the discordant pairs (questions where B scored higher, where A did);
    the test counts only these, ties carry no information about which is better.
    """

    n: int
    difference: float
    ci: Interval | None  # None: fewer than two questions
    test: str  # "McNemar (exact)" | "sign test (exact)"
    p: float
    b_better: int
    a_better: int


# ------------------------------------------------------------------------------------ intervals


def _degenerate(values: np.ndarray) -> bool:
    return bool(np.all(values == values[0]))


def _bootstrap(values: np.ndarray, confidence: float, n_resamples: int, method: str) -> Interval:
    from scipy.stats import bootstrap

    batch = max(1, min(n_resamples, _BATCH_VALUES // len(values)))
    res = bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method=method,
        vectorized=True,
        batch=batch,
        random_state=np.random.default_rng(RANDOM_STATE),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@functools.lru_cache(maxsize=1024)  # a cell per run and metric; a few MB of scores
def _cached_interval(values: tuple[float, ...], confidence: float, n_resamples: int) -> Interval | None:
    arr = np.asarray(values, dtype=float)
    if len(arr) < 2:
        return None
    if _degenerate(arr):
        return float(arr[0]), float(arr[0])
    # BCa corrects the percentile interval for bias and skew (a rate near 0 or 1); on data where its
    # jackknife or bias estimate degenerates it warns and returns NaN: then the plain percentile
    # interval is the honest answer.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lo, hi = _bootstrap(arr, confidence, n_resamples, "BCa")
    degenerate = [w for w in caught if not issubclass(w.category, DeprecationWarning)]
    if degenerate or not (math.isfinite(lo) and math.isfinite(hi)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lo, hi = _bootstrap(arr, confidence, n_resamples, "percentile")
    return lo, hi


def mean_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES
) -> Interval | None:
    """A bootstrap CI of the mean of `values` (one per test question); None for fewer than two.

    Reproducible (a fixed random state) and cached: the same scores give the same interval, and the
    tables and the plot that show the same cell resample it once.
    """
    return _cached_interval(tuple(float(v) for v in values), confidence, n_resamples)


@dataclass(frozen=True)
class SeedSummary:
    """Values over seeds: mean, sample std (ddof=1) and a t-interval of the mean (n ≥ 2)."""

    n: int
    mean: float
    std: float | None
    ci: Interval | None


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> SeedSummary:
    """Mean ± std over seeds and the t-interval mean ± t(n−1)·std/√n; no interval for one seed.

    The seeds are the replications here (each a separately trained student on the same test
    questions), so the interval is about the training's randomness on these questions.
    """
    arr = np.asarray(values, dtype=float)
    n = len(arr)
    if n == 0:
        raise ValueError("seed_interval needs at least one value")
    mean = float(arr.mean())
    if n < 2:
        return SeedSummary(n, mean, None, None)
    std = float(arr.std(ddof=1))
    if std == 0:  # scipy's t.interval needs a positive scale
        return SeedSummary(n, mean, 0.0, (mean, mean))
    from scipy.stats import t

    lo, hi = t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return SeedSummary(n, mean, std, (float(lo), float(hi)))


# ----------------------------------------------------------------------------------- paired tests


def is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def exact_test(a: np.ndarray, b: np.ndarray) -> tuple[str, float, int, int]:
    """(test name, two-sided p, questions where B was higher, where A was) for paired scores.

    0/1 scores: McNemar's exact test on the 2×2 table of (A right?, B right?). Other scores: the
    exact sign test on the pairs that differ. With no discordant pair the p-value is 1.
    """
    b_better = int(np.sum(b > a))
    a_better = int(np.sum(a > b))
    if is_binary(a) and is_binary(b):
        from statsmodels.stats.contingency_tables import mcnemar

        both = int(np.sum((a == 1) & (b == 1)))
        neither = int(np.sum((a == 0) & (b == 0)))
        table = [[both, a_better], [b_better, neither]]  # rows: A right / wrong; columns: B right / wrong
        return "McNemar (exact)", float(mcnemar(table, exact=True).pvalue), b_better, a_better
    if b_better + a_better == 0:
        return "sign test (exact)", 1.0, 0, 0
    from scipy.stats import binomtest

    return (
        "sign test (exact)",
        float(binomtest(b_better, b_better + a_better, 0.5).pvalue),
        b_better,
        a_better,
    )


def common_questions(a: Mapping[str, float], b: Mapping[str, float]) -> list[str]:
    """The questions both runs scored, in a fixed order (the pairing; its size is the n reported)."""
    return sorted(set(a) & set(b))


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
) -> PairedResult | None:
    """B − A on the questions both answered (per-question scores keyed by question id); None when
    they share no question."""
    qids = common_questions(a, b)
    if not qids:
        return None
    xa = np.array([a[q] for q in qids], dtype=float)
    xb = np.array([b[q] for q in qids], dtype=float)
    d = xb - xa
    # Resampling question pairs and taking mean(b − a) is resampling the differences d: scipy's
    # bootstrap(..., paired=True) draws the same indices and gives the same interval (checked in
    # tests/report/test_stats.py), eight times slower.
    ci = mean_interval(d, confidence, n_resamples)
    test, p, b_better, a_better = exact_test(xa, xb)
    return PairedResult(len(qids), float(d.mean()), ci, test, p, b_better, a_better)


def pooled_test(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[str, float, int, int]:
    """The exact paired test on the question × seed pairs of several seeds at once (each item: A's
    and B's scores on one seed's common questions, aligned)."""
    a = np.concatenate([np.asarray(x, dtype=float) for x, _ in pairs])
    b = np.concatenate([np.asarray(y, dtype=float) for _, y in pairs])
    return exact_test(a, b)


def covers_zero(ci: Interval | None) -> bool:
    return ci is None or ci[0] <= 0 <= ci[1]


def significant(ci: Interval | None, p: float, alpha: float = ALPHA) -> bool:
    """Both the CI excludes 0 and the exact test rejects at `alpha`: the two views agree."""
    return not covers_zero(ci) and p < alpha
