"""Protocol summaries and intervals: the authors' evaluation protocol over episode returns,
Welch's t interval for a difference of means over training seeds, and the smallest
difference a table of n seeds per arm can detect.

Student's t distribution is computed here (no scipy): its CDF through the regularized
incomplete beta function (continued fraction, modified Lentz; Press et al., Numerical
Recipes, 3rd ed., section 6.4), its quantile by bisection on that CDF. NumPy only, so
that drawing a table never starts TensorFlow.
"""
import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # two-sided confidence of the intervals, 1 - alpha
POWER = 0.80  # power of the smallest detectable difference


# ----------------------------------------------------------------------------
# The authors' protocol


def protocol_summary(returns):
    """The paper's evaluation protocol over returns [seeds, policies, episodes].

    Per seed: the mean of the policy means and the pooled std sqrt(mean of the policy
    variances). Reported: the median seed's mean with that seed's pooled std (for an
    even number of seeds, the lower of the two middle seeds, so the std is a seed's).
    """
    returns = np.asarray(returns, float)
    policy_means = returns.mean(axis=-1)                                   # [S, P]
    seed_means = policy_means.mean(axis=-1)                                # [S]
    pooled_stds = np.sqrt(returns.var(axis=-1).mean(axis=-1))              # [S]
    median = int(np.argsort(seed_means, kind="stable")[(len(seed_means) - 1) // 2])
    return {"policy_means": policy_means, "seed_means": seed_means,
            "pooled_stds": pooled_stds, "median_index": median}


def protocol_score(returns):
    """The paper's reported score of returns [seeds, policies, episodes]: the median seed's
    mean of policy means and its pooled std, as agent_train's evaluate computes it."""
    summary = protocol_summary(returns)
    median = summary["median_index"]
    return float(summary["seed_means"][median]), float(summary["pooled_stds"][median])


# ----------------------------------------------------------------------------
# Student's t distribution


def regularized_beta(x, a, b):
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1, a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast here
        return front * beta_fraction(x, a, b) / a
    return 1.0 - front * beta_fraction(1.0 - x, b, a) / b


def beta_fraction(x, a, b, tolerance=1e-15, max_terms=10_000):
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf), modified Lentz."""
    tiny = 1e-300

    def nonzero(value):
        return value if abs(value) > tiny else tiny

    c, d = 1.0, 1.0 / nonzero(1.0 - (a + b) * x / (a + 1.0))
    fraction = d
    for m in range(1, max_terms):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),          # even
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd
            d = 1.0 / nonzero(1.0 + numerator * d)
            c = nonzero(1.0 + numerator / c)
            fraction *= d * c
        if abs(d * c - 1.0) < tolerance:
            return fraction
    raise ArithmeticError(f"incomplete beta fraction did not converge at x={x}, a={a}, b={b}")


def t_cdf(t, df):
    """P(T <= t) for Student's t with `df` degrees of freedom (any real df > 0; inf: normal)."""
    if math.isinf(df):
        return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p, df):
    """The t with t_cdf(t, df) = p, 0 < p < 1, by bisection (to about 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p={p}: expected 0 < p < 1")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    while high - low > 1e-12 * max(1.0, high):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return 0.5 * (low + high)


# ----------------------------------------------------------------------------
# Differences of means over training seeds


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with Welch's t interval: low and high (None with fewer than two
    values in an arm), the Welch-Satterthwaite degrees of freedom and the two-sided
    p-value of "the means are equal"."""
    difference: float
    low: float | None = None
    high: float | None = None
    df: float | None = None
    p: float | None = None

    @property
    def verdict(self):
        """"above" or "below" 0 only where the interval excludes 0; else "not distinguishable"."""
        if self.low is None:
            return "-"
        if self.low > 0:
            return "above"
        return "below" if self.high < 0 else "not distinguishable"


def welch_df(var_a, n_a, var_b, n_b):
    """Welch-Satterthwaite degrees of freedom of a difference of two means, from the
    sample variances (ddof=1) and sizes of the two arms."""
    a, b = var_a / n_a, var_b / n_b
    return (a + b) ** 2 / (a * a / (n_a - 1) + b * b / (n_b - 1))


def welch_difference(a, b, level=LEVEL):
    """mean(a) - mean(b) of two independent samples (e.g. per-training-seed scores of two
    agents) and its Welch t interval at `level` (two-sided): difference +-
    t_{(1+level)/2, df} * sqrt(var_a/n_a + var_b/n_b), df by Welch-Satterthwaite.

    Two arms without spread (all values equal in each) give the interval [d, d] and
    p = 0 (d != 0) or 1; an arm with one value gives no interval.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    difference = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Difference(difference)
    var_a, var_b = float(a.var(ddof=1)), float(b.var(ddof=1))
    error = math.sqrt(var_a / len(a) + var_b / len(b))
    if error == 0.0:
        return Difference(difference, difference, difference, None,
                          0.0 if difference else 1.0)
    df = welch_df(var_a, len(a), var_b, len(b))
    half = t_quantile(0.5 + level / 2.0, df) * error
    p = 2.0 * (1.0 - t_cdf(abs(difference) / error, df))
    return Difference(difference, difference - half, difference + half, df, p)


def pooled_std(groups):
    """The pooled sample std of several groups of values: sqrt(sum (n_i - 1) s_i^2 /
    sum (n_i - 1)), over the groups of two or more values; None if there is none."""
    groups = [np.asarray(g, float) for g in groups if len(g) > 1]
    if not groups:
        return None
    squares = sum(((g - g.mean()) ** 2).sum() for g in groups)
    return math.sqrt(squares / sum(len(g) - 1 for g in groups))


def detectable_difference(std, n, level=LEVEL, power=POWER):
    """The smallest difference of means that two arms of `n` seeds each detect with
    probability `power` in a two-sided test at 1 - `level`, seed std `std`:

        (t_{1-alpha/2, df} + t_{power, df}) * std * sqrt(2 / n),  df = 2n - 2,

    the usual sample-size formula (the normal one, z_{1-alpha/2} + z_{1-beta}, with t
    quantiles for small n; e.g. Lehr 1992, Stat. Med. 11:1099; Cohen 1988, ch. 2).
    For n = 3: (2.776 + 0.941) * sqrt(2/3) = 3.035 std. The two-sample t test has
    power 0.79 at that difference for n = 3 and 0.80 from n = 5 (normal seeds, tested
    by simulation in tests/test_stats.py). None for n < 2 or no std.
    """
    if std is None or n < 2:
        return None
    df = 2 * n - 2
    return (t_quantile(0.5 + level / 2.0, df) + t_quantile(power, df)) * std * math.sqrt(2.0 / n)
