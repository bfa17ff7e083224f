"""Listening-test statistics against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from studio.listening import stats


def test_mos_t_interval_matches_hand_computation():
    # scores 1..5: mean 3, SD sqrt(2.5), SE sqrt(2.5/5) = 0.70711, t(0.975, 4) = 2.776445
    out = stats.t_interval([1, 2, 3, 4, 5])
    assert out["n"] == 5 and out["mean"] == 3.0
    assert out["sd"] == pytest.approx(math.sqrt(2.5))
    assert out["ci"] == pytest.approx([3 - 2.776445 * 0.7071068, 3 + 2.776445 * 0.7071068], abs=1e-5)
    assert math.isnan(stats.t_interval([4])["ci"][0])  # one rating has no interval


def test_sign_test_is_exact_binomial_with_ties_left_out():
    out = stats.sign_test(8, 2, ties=3)
    # P(X >= 8 | n=10, 1/2) = (45 + 10 + 1) / 1024; two-sided doubles it
    assert out["p_value"] == pytest.approx(2 * 56 / 1024)
    assert out["win_rate"] == pytest.approx(0.8)
    assert out["win_rate_ties_half"] == pytest.approx((8 + 1.5) / 13)
    assert out["n_decided"] == 10 and out["ties"] == 3
    assert out["ci"] == pytest.approx([0.44390, 0.97479], abs=1e-4)  # Clopper-Pearson for 8/10
    assert "excluded" in out["ties_handling"]
    assert math.isnan(stats.sign_test(0, 0, ties=4)["p_value"])  # only ties: nothing to test


def test_position_bias_flags_a_side_preference():
    out = stats.position_bias(15, 5)
    # P(X >= 15 | n=20) = (15504 + 4845 + 1140 + 190 + 20 + 1) / 2^20
    assert out["p_value"] == pytest.approx(2 * 21700 / 2 ** 20)
    assert out["biased"] and out["rate_a"] == 0.75
    assert not stats.position_bias(10, 10)["biased"]


def test_bradley_terry_recovers_strengths_that_fit_exactly():
    # Strengths 4 : 2 : 1 give P(1 beats 2) = 2/3, P(1 beats 3) = 4/5, P(2 beats 3) = 2/3; these win
    # counts meet the likelihood equations exactly, so the MLE is log(4, 2, 1) centred.
    wins = np.array([[0, 2, 4],
                     [1, 0, 2],
                     [1, 1, 0]])
    scores, regularised = stats.bradley_terry(wins)
    assert not regularised
    assert scores == pytest.approx([math.log(2), 0.0, -math.log(2)], abs=1e-6)
    two, _ = stats.bradley_terry(np.array([[0, 3], [1, 0]]))
    assert two[0] - two[1] == pytest.approx(math.log(3), abs=1e-6)


def test_bradley_terry_without_an_mle_is_regularised_and_finite():
    scores, regularised = stats.bradley_terry(np.array([[0, 3, 2], [0, 0, 1], [0, 1, 0]]))  # system 0 never lost
    assert regularised and np.all(np.isfinite(scores)) and scores[0] == scores.max()


def test_bt_bootstrap_intervals_contain_the_estimate():
    rng = np.random.default_rng(0)
    pairs = []
    strength = [1.0, 0.0, -1.0]
    for rater in range(8):
        for _ in range(15):
            i, j = rng.choice(3, size=2, replace=False)
            p = 1 / (1 + math.exp(strength[j] - strength[i]))
            pairs.append((int(i), int(j), float(rng.random() < p), rater))
    est, ci = stats.bt_bootstrap(pairs, 3, n_boot=300, seed=1)
    assert np.all(ci[:, 0] <= est) and np.all(est <= ci[:, 1])
    assert est[0] > est[1] > est[2]


def test_cluster_bootstrap_resamples_raters_hand_case():
    # One item, two raters scoring 1 and 5: a replicate draws the raters (2,0), (1,1) or (0,2), so its
    # mean is 1, 3 or 5 with probabilities 1/4, 1/2, 1/4; the 95% percentile interval is [1, 5].
    ci = stats.cluster_bootstrap_means([1, 5], [0, 1], [0, 0], [0, 0], 1, n_boot=4000, seed=3)
    assert ci[0].tolist() == [1.0, 5.0]
    # Constant scores give a zero-width interval; a system with no ratings gives NaN.
    flat = stats.cluster_bootstrap_means([4, 4, 4, 4], [0, 1, 0, 1], [0, 0, 1, 1], [0, 0, 0, 0], 2, n_boot=200)
    assert flat[0].tolist() == [4.0, 4.0] and np.all(np.isnan(flat[1]))


def test_cluster_bootstrap_is_wider_than_iid_when_raters_differ():
    # 6 raters with strong personal offsets, 10 items: ratings within a rater are correlated.
    rng = np.random.default_rng(5)
    offsets = rng.normal(0, 1.0, size=6)
    r = np.repeat(np.arange(6), 10)
    i = np.tile(np.arange(10), 6)
    scores = 3 + offsets[r] + rng.normal(0, 0.2, size=60)
    lo, hi = stats.cluster_bootstrap_means(scores, r, i, np.zeros(60, int), 1, n_boot=2000, seed=0)[0]
    t_lo, t_hi = stats.t_interval(scores)["ci"]
    assert (hi - lo) > 1.5 * (t_hi - t_lo)


def test_robust_z_and_rater_bias_hand_values():
    z = stats.robust_z([1, 2, 3, 4, 100])  # median 3, MAD 1 -> scale 1.4826
    assert z[-1] == pytest.approx(97 / 1.4826) and z[2] == 0
    # MAD 0 -> mean absolute deviation 8/5 (x 1.2533) is the scale; a floor can raise it.
    assert stats.robust_z([0, 0, 0, 0, 8])[-1] == pytest.approx(8 / (1.2533 * 1.6))
    assert stats.robust_z([0.0, 0.0, 0.01], min_scale=0.25)[-1] == pytest.approx(0.04)
    # Three raters on two stimuli; rater 2 rates everything 1 where the others say 4.
    bias = stats.mos_rater_bias([4, 4, 4, 4, 1, 1], [0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1])
    assert bias[2] == pytest.approx(-3.0)  # 1 - mean(4, 4)
    assert bias[0] == pytest.approx(1.5)  # 4 - mean(4, 1)


def test_ab_disagreement_with_the_other_raters_majority():
    votes = [(r, 1, 2, 1) for r in range(3) for _ in range(2)] + [(3, 1, 2, 2), (3, 1, 2, 2), (3, 2, 1, None)]
    d = stats.ab_rater_disagreement(votes)
    assert d[3] == 1.0 and d[0] == 0.0  # rater 3 always goes against the others; ties are ignored
