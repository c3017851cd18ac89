"""rl4rec_core.metrics against values worked out by hand (the working is in the comments)."""

import math

import pytest
import torch

from rl4rec_core import metrics


def test_rank_counts_strictly_higher_and_ties_pessimistically():
    # items:    0    1    2    3    4
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.5, 0.3]])
    # target 2 scores 0.5; items scoring >= 0.5: item 1 (0.9), item 2 itself, item 3 (0.5 tie)
    # -> pessimistic rank 3 (an optimistic rule would give 2)
    assert metrics.target_ranks(scores, torch.tensor([2])).tolist() == [3]
    # target 1 is the unique maximum -> rank 1; target 0 is the minimum -> rank 5
    assert metrics.target_ranks(scores.repeat(2, 1), torch.tensor([1, 0])).tolist() == [1, 5]


def test_all_items_tied_ranks_target_last():
    # a constant scorer must not look good: every one of the 4 items ties with the target -> rank 4
    scores = torch.zeros(1, 4)
    assert metrics.target_ranks(scores, torch.tensor([0])).tolist() == [4]


def test_history_is_masked_but_target_never():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    # no masking: target 3 has items 0,1,2 above it -> rank 4
    assert metrics.target_ranks(scores, torch.tensor([3])).tolist() == [4]
    # history {0, 2} masked to -inf: only item 1 above -> rank 2
    assert metrics.target_ranks(scores, torch.tensor([3]), [[0, 2]]).tolist() == [2]
    # target 3 also in the history (a re-watch): it keeps its score 0.6, items 0 and 2 masked,
    # item 1 (0.8) above it -> rank 2, not N+1 as a naive mask would give
    assert metrics.target_ranks(scores, torch.tensor([3]), [[0, 2, 3]]).tolist() == [2]


def test_masking_is_per_user_and_leaves_input_untouched():
    scores = torch.tensor([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7]])
    before = scores.clone()
    # user 0 masks item 0 -> target 2 has item 1 above -> rank 2
    # user 1 masks nothing (empty history) -> target 2 has items 0 and 1 above -> rank 3
    ranks = metrics.target_ranks(scores, torch.tensor([2, 2]), [[0], []])
    assert ranks.tolist() == [2, 3]
    assert torch.equal(scores, before)


def test_all_histories_empty():
    scores = torch.tensor([[0.2, 0.4], [0.4, 0.2]])
    # user 0: target 0 (0.2) below item 1 -> rank 2; user 1: target 0 (0.4) on top -> rank 1
    assert metrics.target_ranks(scores, torch.tensor([0, 0]), [[], []]).tolist() == [2, 1]


def test_hit_and_ndcg_values():
    ranks = torch.tensor([1, 2, 3, 11])
    # hit@10: ranks 1,2,3 are <= 10, rank 11 is not -> [1,1,1,0]
    assert metrics.hit_at_k(ranks, 10).tolist() == [1.0, 1.0, 1.0, 0.0]
    # ndcg = 1/log2(rank+1): rank1 -> 1/log2(2)=1; rank2 -> 1/log2(3)=0.63093; rank3 -> 1/log2(4)=0.5
    # rank 11 > k=10 -> 0
    expected = [1.0, 1 / math.log2(3), 0.5, 0.0]
    assert metrics.ndcg_at_k(ranks, 10).tolist() == pytest.approx(expected, abs=1e-6)
    # mrr terms: 1, 1/2, 1/3, 1/11
    assert metrics.reciprocal_rank(ranks).tolist() == pytest.approx([1, 0.5, 1 / 3, 1 / 11], abs=1e-6)


def test_k_larger_than_rank_and_than_catalogue():
    ranks = torch.tensor([3])
    # k=2 < rank 3: miss; k=3 == rank: hit with gain 1/log2(4) = 0.5
    assert metrics.hit_at_k(ranks, 2).item() == 0.0
    assert metrics.ndcg_at_k(ranks, 3).item() == pytest.approx(0.5)
    # k=1000 far beyond a 5-item catalogue still just counts the rank: hit 1, ndcg 0.5
    assert metrics.hit_at_k(ranks, 1000).item() == 1.0
    assert metrics.ndcg_at_k(ranks, 1000).item() == pytest.approx(0.5)


def test_summarize_means_over_users():
    ranks = torch.tensor([1, 4])
    out = metrics.summarize(ranks, ks=(1, 5))
    # hit@1: [1, 0] -> 0.5; hit@5: [1, 1] -> 1.0
    # ndcg@1: [1, 0] -> 0.5; ndcg@5: [1, 1/log2(5)=0.43068] -> 0.71534
    # mrr: [1, 0.25] -> 0.625
    assert out["hit@1"] == pytest.approx(0.5)
    assert out["hit@5"] == pytest.approx(1.0)
    assert out["ndcg@1"] == pytest.approx(0.5)
    assert out["ndcg@5"] == pytest.approx((1 + 1 / math.log2(5)) / 2, abs=1e-6)
    assert out["mrr"] == pytest.approx(0.625)
    assert list(metrics.summarize(ranks)) == ["hit@5", "ndcg@5", "hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr"]


def test_end_to_end_with_masking_and_ties():
    # two users over 6 items
    scores = torch.tensor(
        [
            [0.5, 0.5, 0.9, 0.1, 0.5, 0.0],  # user 0: target 0, history [2]
            [0.3, 0.2, 0.1, 0.8, 0.7, 0.6],  # user 1: target 5, history [3, 5]
        ]
    )
    # user 0: item 2 (0.9) masked; items >= 0.5: 0 (itself), 1, 4 -> rank 3
    # user 1: item 3 masked, target 5 in history stays 0.6; above it: item 4 (0.7) -> rank 2
    ranks = metrics.target_ranks(scores, torch.tensor([0, 5]), [[2], [3, 5]])
    assert ranks.tolist() == [3, 2]
    out = metrics.summarize(ranks, ks=(2,))
    # hit@2: [0, 1] -> 0.5; ndcg@2: [0, 1/log2(3)] -> 0.31546; mrr: (1/3 + 1/2)/2 = 0.41667
    assert out["hit@2"] == pytest.approx(0.5)
    assert out["ndcg@2"] == pytest.approx(0.5 / math.log2(3), abs=1e-6)
    assert out["mrr"] == pytest.approx(5 / 12, abs=1e-6)


@pytest.mark.parametrize("k", [0, -1, 2.5, "10", None])
def test_bad_k_is_rejected(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.hit_at_k(torch.tensor([1]), k)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.ndcg_at_k(torch.tensor([1]), k)


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        metrics.target_ranks(torch.tensor([[0.1, float("nan")]]), torch.tensor([0]))


def test_bad_shapes_and_targets_are_rejected():
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        metrics.target_ranks(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets must be"):
        metrics.target_ranks(torch.zeros(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="out of range"):
        metrics.target_ranks(torch.zeros(1, 3), torch.tensor([3]))
    with pytest.raises(ValueError, match="histories"):
        metrics.target_ranks(torch.zeros(2, 3), torch.tensor([0, 1]), [[1]])
    with pytest.raises(ValueError, match="no users"):
        metrics.summarize(torch.tensor([], dtype=torch.long))
