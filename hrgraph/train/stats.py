"""The statistics of a report: pure functions of lists of accuracies, no files, no torch.

Every test is scipy's (``scipy.stats``); what this module adds is the choice of
tests a reviewer asks for when two models are compared over a few seeds:

- the mean difference with its 95% confidence interval (Welch: unequal variances),
- Hedges' g, the standardised difference with the small-sample bias removed,
- Welch's two-sided p, and Holm's step-down adjustment over a family of comparisons,
- where both models ran the same seeds (same data split, same batch order), the
  paired t-test on the per-seed differences,
- the difference the design could detect: the true difference that a two-sided
  two-sample t-test at alpha 0.05 finds with 80% power, given the observed pooled
  spread and the numbers of seeds (exact, from the noncentral t distribution).

Undefined quantities are ``nan`` (fewer than two values, no spread): the report
shows them as empty, never as a number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import optimize, special
from scipy import stats as st

__all__ = [
    "Comparison",
    "welch_ttest",
    "welch_ci",
    "hedges_g",
    "paired_ttest",
    "holm",
    "detectable_difference",
    "compare",
]

NAN = math.nan


def welch_ttest(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's two-sided t-test (unequal variances) of ``mean(a) - mean(b)``: ``(t, df, p)``.

    ``p`` is ``scipy.stats.ttest_ind(a, b, equal_var=False).pvalue``; ``nan``
    where the test is undefined: fewer than two values in a group, or no
    variance in either.

    Examples
    --------
    >>> t, df, p = welch_ttest([93.1, 93.4, 93.2], [92.5, 92.9, 92.6])
    >>> round(t, 4), round(df, 3), round(p, 5)
    (3.8013, 3.67, 0.02233)
    >>> welch_ttest([1.0], [2.0, 3.0])
    (nan, nan, nan)
    """
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return NAN, NAN, NAN
    v1, v2 = statistics.variance(a) / n1, statistics.variance(b) / n2
    if v1 + v2 == 0:
        return NAN, NAN, NAN
    result = st.ttest_ind(a, b, equal_var=False)
    # Welch-Satterthwaite; computed here because TtestResult.df is scipy >= 1.11 only.
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    return float(result.statistic), df, float(result.pvalue)


def welch_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` and its Welch confidence interval: ``(diff, low, high)``.

    The interval is ``diff ± t(df) * se`` with the Welch-Satterthwaite ``df``,
    the interval that ``scipy.stats.ttest_ind(a, b, equal_var=False)`` reports
    (scipy >= 1.11).  ``low`` and ``high`` are ``nan`` where Welch's test is
    undefined; ``diff`` needs one value per group.

    Examples
    --------
    >>> [round(x, 4) for x in welch_ci([93.1, 93.4, 93.2], [92.5, 92.9, 92.6])]
    [0.5667, 0.1377, 0.9957]
    """
    if not a or not b:
        return NAN, NAN, NAN
    diff = statistics.fmean(a) - statistics.fmean(b)
    _, df, _ = welch_ttest(a, b)
    if math.isnan(df):
        return diff, NAN, NAN
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    half = float(st.t.ppf(0.5 + confidence / 2, df)) * se
    return diff, diff - half, diff + half


def _pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return NAN
    return math.sqrt(((n1 - 1) * statistics.variance(a) + (n2 - 1) * statistics.variance(b)) / (n1 + n2 - 2))


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Hedges' g: ``(mean(a) - mean(b)) / pooled sd``, times the exact small-sample correction J.

    ``J = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))`` with ``df = n_a + n_b - 2``
    (Hedges 1981; about ``1 - 3 / (4 df - 1)``): Cohen's d overestimates the
    effect with few seeds, by 25% at three seeds per model (J = 0.798).

    Examples
    --------
    >>> round(hedges_g([93.1, 93.4, 93.2], [92.5, 92.9, 92.6]), 4)
    2.4764
    """
    sd = _pooled_sd(a, b)
    if math.isnan(sd) or sd == 0:
        return NAN
    df = len(a) + len(b) - 2
    j = math.exp(special.gammaln(df / 2) - 0.5 * math.log(df / 2) - special.gammaln((df - 1) / 2))
    return j * (statistics.fmean(a) - statistics.fmean(b)) / sd


def paired_ttest(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95
) -> tuple[int, float, float, float, float]:
    """The paired t-test on the per-seed differences ``a[s] - b[s]`` over the seeds both have.

    Returns ``(n_pairs, mean difference, ci_low, ci_high, p)``; ``p`` is
    ``scipy.stats.ttest_rel``'s two-sided p-value.  The statistics are ``nan``
    with fewer than two shared seeds, and the p-value and interval also when
    every difference is the same.

    Examples
    --------
    >>> n, d, lo, hi, p = paired_ttest({0: 93.1, 1: 93.4, 2: 93.2}, {0: 92.5, 1: 92.9, 2: 92.6, 3: 92.0})
    >>> n, round(d, 4), round(lo, 4), round(hi, 4), round(p, 5)
    (3, 0.5667, 0.4232, 0.7101, 0.00344)
    """
    seeds = sorted(set(a) & set(b))
    n = len(seeds)
    if n < 2:
        return n, NAN, NAN, NAN, NAN
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs)
    if sd == 0:
        return n, mean, NAN, NAN, NAN
    p = float(st.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    half = float(st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return n, mean, mean - half, mean + half, p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (``nan`` entries are not in the family).

    The i-th smallest of the m p-values becomes ``max over j <= i of min(1, (m - j + 1) p_(j))``:
    rejecting every adjusted p below alpha keeps the family-wise error rate at
    alpha, whatever the dependence between the tests (Holm 1979).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, float("nan")])
    [0.03, 0.06, 0.06, nan]
    """
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(order)
    adjusted = [NAN] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _power(nc: float, df: float, t_crit: float) -> float:
    return float(st.nct.sf(t_crit, df, nc) + st.nct.cdf(-t_crit, df, nc))


def detectable_difference(sd: float, n1: int, n2: int, *, power: float = 0.8, alpha: float = 0.05) -> float:
    """The true difference of means that a two-sided two-sample t-test detects with ``power``.

    Exact for Student's (pooled) t-test: the test statistic under a true
    difference ``delta`` follows a noncentral t with ``df = n1 + n2 - 2`` and
    noncentrality ``delta / (sd * sqrt(1/n1 + 1/n2))``; the noncentrality whose
    rejection probability at level ``alpha`` is ``power`` is found by root
    finding on ``scipy.stats.nct``.  For Welch's test with similar spreads it
    is the same to within a few percent.  ``nan`` without two values per group
    or without spread.

    Examples
    --------
    >>> round(detectable_difference(1.0, 3, 3), 2)   # in sd units: 3.07 sd at three seeds each (G*Power: 3.07)
    3.07
    >>> round(detectable_difference(1.0, 20, 20), 3)  # the normal approximation gives 0.886
    0.909
    """
    if n1 < 2 or n2 < 2 or not sd > 0 or math.isnan(sd):
        return NAN
    df = n1 + n2 - 2
    t_crit = float(st.t.ppf(1 - alpha / 2, df))
    # The power rises with the noncentrality; bracket the root by doubling (nct is nan far out in the tail).
    high = 4.0
    while _power(high, df, t_crit) < power:
        high *= 2
    nc = optimize.brentq(lambda x: _power(x, df, t_crit) - power, 0.0, high, xtol=1e-10)
    return nc * sd * math.sqrt(1 / n1 + 1 / n2)


@dataclass(frozen=True)
class Comparison:
    """One model against its baseline on one data set (differences are model minus baseline)."""

    n: int
    n_baseline: int
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    hedges_g: float
    t: float
    df: float
    p_welch: float
    p_holm: float
    n_paired: int
    paired_diff: float
    paired_ci_low: float
    paired_ci_high: float
    p_paired: float
    detectable_diff: float


def compare(a: Mapping[int | None, float] | Sequence[float], b: Mapping[int | None, float] | Sequence[float]) -> Comparison:
    """Every statistic of ``a`` against ``b``; mappings seed -> value also give the paired test.

    ``p_holm`` is ``nan`` here: it depends on the whole family, see :func:`holm`.

    Examples
    --------
    >>> c = compare({0: 93.1, 1: 93.4, 2: 93.2}, {0: 92.5, 1: 92.9, 2: 92.6})
    >>> round(c.diff, 4), round(c.p_welch, 5), c.n_paired, round(c.p_paired, 5)
    (0.5667, 0.02233, 3, 0.00344)
    """
    va, vb = (list(x.values()) if isinstance(x, Mapping) else list(x) for x in (a, b))
    diff, low, high = welch_ci(va, vb)
    t, df, p = welch_ttest(va, vb)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        pairs = paired_ttest({s: v for s, v in a.items() if s is not None}, {s: v for s, v in b.items() if s is not None})
    else:
        pairs = (0, NAN, NAN, NAN, NAN)
    return Comparison(
        n=len(va), n_baseline=len(vb), diff=diff, diff_ci_low=low, diff_ci_high=high, hedges_g=hedges_g(va, vb),
        t=t, df=df, p_welch=p, p_holm=NAN, n_paired=pairs[0], paired_diff=pairs[1], paired_ci_low=pairs[2],
        paired_ci_high=pairs[3], p_paired=pairs[4], detectable_diff=detectable_difference(_pooled_sd(va, vb), len(va), len(vb)),
    )
