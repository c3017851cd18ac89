"""The champion/challenger rule on hand-made per-user ranks (no services needed)."""

from __future__ import annotations

from flows.promotion import decide_promotion


def test_first_model_is_promoted():
    d = decide_promotion([1, 5, 30], None)
    assert d.promote and "first model" in d.reason and d.champion_ndcg is None


def test_clearly_better_challenger_is_promoted():
    # challenger hits rank 1 for every user, champion never enters the top 10: diff = 1 for all users
    d = decide_promotion([1] * 50, [50] * 50)
    assert d.promote and d.ci_low > 0 and d.diff_mean == 1.0


def test_equal_or_worse_challenger_keeps_champion():
    same = decide_promotion([3, 7, 12, 1] * 10, [3, 7, 12, 1] * 10)
    assert not same.promote and same.ci_low == 0.0  # a tie is not "better"
    worse = decide_promotion([50] * 40, [1] * 40)
    assert not worse.promote and worse.ci_high < 0


def test_noisy_small_gain_is_not_enough():
    # one user better out of 40: the mean gain is positive but the interval still reaches 0
    d = decide_promotion([1] + [20] * 39, [20] * 40)
    assert d.diff_mean > 0 and not d.promote
