"""The protocol's summary, Student's t, Welch's interval and the smallest detectable
difference (stats.py), against values computed by hand and printed tables."""
import math

import numpy as np
import pytest

import stats


def test_protocol_summary_pools_stds_and_takes_the_median_seed():
    returns = np.array([[[1.0, 3.0], [5.0, 5.0]],                 # seed 1: means 2, 5
                        [[0.0, 0.0], [2.0, 6.0]],                 # seed 2: means 0, 4
                        [[9.0, 9.0], [9.0, 11.0]],                # seed 3: means 9, 10
                        [[4.0, 4.0], [4.0, 4.0]]])                # seed 4: means 4, 4
    summary = stats.protocol_summary(returns)
    np.testing.assert_allclose(summary["seed_means"], [3.5, 2.0, 9.5, 4.0])
    np.testing.assert_allclose(summary["pooled_stds"], np.sqrt([0.5, 2.0, 0.5, 0.0]))
    assert summary["median_index"] == 0   # even count: the lower middle seed (3.5, not 4.0)
    assert stats.protocol_score(returns.tolist()) == (3.5, pytest.approx(math.sqrt(0.5)))


def test_regularized_beta_closed_forms():
    for x in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        assert stats.regularized_beta(x, 1, 1) == pytest.approx(x, abs=1e-14)
        assert stats.regularized_beta(x, 3, 1) == pytest.approx(x ** 3, abs=1e-14)
        assert stats.regularized_beta(x, 1, 2.5) == pytest.approx(1 - (1 - x) ** 2.5, abs=1e-14)
    assert stats.regularized_beta(0.5, 7.3, 7.3) == pytest.approx(0.5, abs=1e-14)


@pytest.mark.parametrize("t", [-30.0, -2.0, -0.3, 0.0, 0.7, 4.303, 100.0])
def test_t_cdf_closed_forms_for_one_and_two_degrees_of_freedom(t):
    assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
    assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)


def test_t_quantiles_against_printed_tables():
    # two-sided 95% (p = 0.975) and one-sided 80% quantiles, as printed to 3 decimals
    for df, printed in ((1, 12.706), (2, 4.303), (4, 2.776), (5, 2.571), (10, 2.228),
                        (30, 2.042)):
        assert stats.t_quantile(0.975, df) == pytest.approx(printed, abs=5e-4), df
    for df, printed in ((2, 1.061), (4, 0.941), (10, 0.879)):
        assert stats.t_quantile(0.80, df) == pytest.approx(printed, abs=5e-4), df
    # closed forms: df = 1, tan(pi (p - 1/2)); df = 2, (2p - 1) / sqrt(2 p (1 - p))
    assert stats.t_quantile(0.975, 1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-10)
    assert stats.t_quantile(0.975, 2) == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025),
                                                       rel=1e-10)
    assert stats.t_quantile(0.025, 4) == -stats.t_quantile(0.975, 4)
    assert stats.t_quantile(0.975, math.inf) == pytest.approx(1.95996, abs=1e-5)
    assert stats.t_quantile(0.975, 1e7) == pytest.approx(1.95996, abs=1e-5)
    with pytest.raises(ValueError):
        stats.t_quantile(1.0, 3)


def test_welch_satterthwaite_df_by_hand():
    # a = 1, 2, 3: var 1, n 3; b = 2, 4, ..., 10: var 10, n 5
    # df = (1/3 + 2)^2 / ((1/3)^2 / 2 + 2^2 / 4) = (49/9) / (19/18) = 98/19
    assert stats.welch_df(1.0, 3, 10.0, 5) == pytest.approx(98 / 19, rel=1e-12)
    result = stats.welch_difference([1, 2, 3], [2, 4, 6, 8, 10])
    assert result.df == pytest.approx(98 / 19, rel=1e-12)
    assert result.difference == -4.0
    half = (result.high - result.low) / 2
    assert result.low + half == pytest.approx(-4.0)
    # between the t quantiles of 5 and 6 df (2.571, 2.447) times sqrt(1/3 + 2)
    assert 2.447 * math.sqrt(7 / 3) < half < 2.571 * math.sqrt(7 / 3)
    # equal sizes and variances: df = 2n - 2
    assert stats.welch_df(4.0, 3, 4.0, 3) == pytest.approx(4.0)


def test_welch_interval_and_p_by_hand():
    # a = 4, 5, 6 and b = 1, 2, 3: difference 3, se sqrt(1/3 + 1/3) = 0.8165, df 4,
    # interval 3 +- 2.776 * 0.8165 = [0.733, 5.267]; t = 3.674, and with the df = 4 CDF
    # F(t) = 1/2 + 3/8 u (1 - u^2 / 12), u = t / sqrt(1 + t^2 / 4) = 1.7565:
    # F = 0.98930, p = 2 (1 - F) = 0.0214.
    result = stats.welch_difference([4, 5, 6], [1, 2, 3])
    assert result.difference == 3.0 and result.df == pytest.approx(4.0)
    assert (result.low, result.high) == (pytest.approx(0.733, abs=1e-3),
                                         pytest.approx(5.267, abs=1e-3))
    assert result.p == pytest.approx(0.0214, abs=2e-4)
    assert result.verdict == "above"
    assert stats.welch_difference([1, 2, 3], [4, 5, 6]).verdict == "below"


def test_a_record_of_the_mspacman_table_is_not_distinguishable_from_its_floor():
    # PKey-GNN against its warm-up floor (docs/table1_mspacman_runs.json): difference
    # 722.40 - 366.33 = 356.07; variances 39551.1 and 21209.3 over 3 seeds each;
    # se = sqrt(13183.7 + 7069.8) = 142.31; df = 20253.5^2 / (13183.7^2/2 + 7069.8^2/2)
    # = 3.666; t = 2.502, p = 0.072. A percentile bootstrap over the three seeds called
    # this interval "above 0".
    result = stats.welch_difference([493, 828, 846.2], [329, 243, 527])
    assert result.difference == pytest.approx(356.067, abs=1e-3)
    assert result.df == pytest.approx(3.666, abs=1e-3)
    assert result.p == pytest.approx(0.072, abs=1e-3)
    assert result.low < 0 < result.high and result.verdict == "not distinguishable"


def test_welch_without_spread_or_with_one_seed():
    assert stats.welch_difference([3, 5], [1]) == stats.Difference(3.0)
    assert stats.Difference(3.0).verdict == "-"
    flat = stats.welch_difference([2, 2, 2], [1, 1])
    assert (flat.low, flat.high, flat.p, flat.verdict) == (1.0, 1.0, 0.0, "above")
    assert stats.welch_difference([2, 2], [2, 2]).verdict == "not distinguishable"


def test_pooled_std_by_hand():
    # squares about the means: 2 and 40, over 2 + 4 degrees of freedom: sqrt(7)
    assert stats.pooled_std([[1, 2, 3], [2, 4, 6, 8, 10], [5]]) == pytest.approx(math.sqrt(7))
    assert stats.pooled_std([[5], []]) is None


def test_detectable_difference_by_hand():
    # n = 3: df 4, (2.776 + 0.941) * sqrt(2/3) = 3.035 stds
    assert stats.detectable_difference(1.0, 3) == pytest.approx(3.035, abs=1e-3)
    assert stats.detectable_difference(200.0, 3) == pytest.approx(607.0, abs=0.2)
    # n = 5: df 8, (2.306 + 0.889) * sqrt(2/5) = 2.021 stds
    assert stats.detectable_difference(1.0, 5) == pytest.approx(2.021, abs=1e-3)
    assert stats.detectable_difference(1.0, 1) is None
    assert stats.detectable_difference(None, 3) is None


@pytest.mark.parametrize("n", [3, 5])
def test_a_t_test_detects_the_detectable_difference_about_four_times_in_five(n):
    rng = np.random.default_rng(0)
    trials = 200_000
    a = rng.normal(stats.detectable_difference(1.0, n), 1.0, (trials, n))
    b = rng.normal(0.0, 1.0, (trials, n))
    pooled = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
    t = (a.mean(axis=1) - b.mean(axis=1)) / (pooled * math.sqrt(2 / n))
    power = np.mean(np.abs(t) > stats.t_quantile(0.975, 2 * n - 2))
    assert power == pytest.approx(0.80, abs=0.015)
