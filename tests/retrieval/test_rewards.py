"""Reward functions against hand-worked values, the registry, and dotted-path user rewards."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.retrieval import rewards

RANKS = torch.tensor([1, 2, 10, 11])


def call(name, ranks=RANKS, scores=None, **kw):
    fn = rewards.resolve_reward(name)
    return fn(ranks=ranks, scores=scores, targets=torch.zeros(len(ranks), dtype=torch.long), num_items=20, **kw)


def test_rank_rewards_match_hand_values():
    # ndcg@10 = 1/log2(rank+1) inside the top 10: 1, 1/log2(3), 1/log2(11), 0 (rank 11 is outside)
    ndcg = [1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0]
    assert call("ndcg@10").tolist() == pytest.approx(ndcg, abs=1e-6)
    # any cut-off parses: ndcg@1 keeps only rank 1
    assert call("ndcg@1").tolist() == [1.0, 0.0, 0.0, 0.0]
    assert call("hit@10").tolist() == [1.0, 1.0, 1.0, 0.0]
    assert call("hit@2").tolist() == [1.0, 1.0, 0.0, 0.0]
    assert call("mrr").tolist() == pytest.approx([1.0, 0.5, 0.1, 1 / 11])
    # mixed = 0.5 ndcg@10 + 0.5 mrr
    assert call("mixed").tolist() == pytest.approx([0.5 * a + 0.5 * b for a, b in zip(ndcg, [1, 0.5, 0.1, 1 / 11])], abs=1e-6)


def test_top5_diversity_is_mean_plus_tenth_std_of_top5():
    inf = float("inf")
    scores = torch.tensor(
        [
            # top 5 = .9 .8 .7 .6 .5: mean .7, sample std sqrt((.04+.01+0+.01+.04)/4) = sqrt(.025)
            [0.1, 0.9, 0.8, 0.7, 0.6, 0.5],
            # a masked (-inf) item never enters the top 5: five equal scores -> mean 1, std 0
            [-inf, 1.0, 1.0, 1.0, 1.0, 1.0],
        ]
    )
    out = call("top5_diversity", ranks=torch.tensor([1, 1]), scores=scores)
    assert out.tolist() == pytest.approx([0.7 + 0.1 * math.sqrt(0.025), 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="at least 5"):
        call("top5_diversity", ranks=torch.tensor([1]), scores=torch.ones(1, 3))


def test_rank_pct_is_linear_in_rank_over_the_candidates():
    # 20 items: 1 - (rank-1)/19 -> ranks 1, 2, 10, 11 give 1, 18/19, 10/19, 9/19
    assert call("rank_pct").tolist() == pytest.approx([1.0, 18 / 19, 10 / 19, 9 / 19])
    # with sampled negatives the service passes num_candidates (here 11): rank 11 is the bottom -> 0
    assert call("rank_pct", num_candidates=11).tolist() == pytest.approx([1.0, 0.9, 0.1, 0.0])


def test_log_rank_pays_each_tenfold_step_up_the_list_alike():
    # 20 items: 1 - ln(rank)/ln(20) -> ranks 1, 2, 10, 11
    assert call("log_rank").tolist() == pytest.approx([1 - math.log(r) / math.log(20) for r in (1, 2, 10, 11)])
    out = rewards.resolve_reward("log_rank")(ranks=torch.tensor([1, 10, 100, 1000]), scores=None, num_items=1000)
    assert out.tolist() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0], abs=1e-6)
    assert call("log_rank", num_candidates=11).tolist()[-1] == pytest.approx(0.0, abs=1e-6)


def test_rank_only_rewards_do_not_ask_for_scores():
    for name in ("ndcg@10", "hit@5", "mrr", "mixed", "rank_pct", "log_rank"):
        assert rewards.resolve_reward(name).needs_scores is False
    assert rewards.resolve_reward("top5_diversity").needs_scores is True


def test_unknown_names_list_the_known_ones():
    for bad in ("ndgc@10", "recall", "", "ndcg@0"):
        with pytest.raises(ConfigError) as e:
            rewards.resolve_reward(bad)
        assert "ndcg@" in str(e.value)
    with pytest.raises(ConfigError, match="cannot import module"):
        rewards.resolve_reward("no_such_pkg.mod:fn")
    with pytest.raises(ConfigError, match="has no function"):
        rewards.resolve_reward("rl4rec_core.retrieval.rewards:nope")


def test_registry_refuses_duplicates():
    with pytest.raises(ConfigError, match="already registered"):
        rewards.register_reward("mrr", lambda **_: None)
    with pytest.raises(ConfigError, match="already registered"):
        rewards.register_reward_family("ndcg", lambda k: None)


def test_dotted_path_user_reward(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "import torch\n"
        "def half_mrr(*, ranks, scale=0.5, **kwargs):\n"
        "    return scale / ranks.float()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards", None)
    for path in ("my_rewards:half_mrr", "my_rewards.half_mrr"):
        assert call(path).tolist() == pytest.approx([0.5, 0.25, 0.05, 0.5 / 11])
    # user keywords reach the function; unknown ones are swallowed by **kwargs
    assert call("my_rewards:half_mrr", scale=1.0, texts=["a"] * 4).tolist() == pytest.approx([1, 0.5, 0.1, 1 / 11])


def test_check_rewards_rejects_bad_output():
    with pytest.raises(ValueError, match="shape"):
        rewards.check_rewards(torch.ones(3), 4, "x")
    with pytest.raises(ValueError, match="NaN"):
        rewards.check_rewards(torch.tensor([1.0, float("nan")]), 2, "x")
    assert rewards.check_rewards(torch.tensor([1, 2]), 2, "x").dtype == torch.float32
