"""Policy evaluation: greedy texts ranked by the real retrieval service, checkpoints, paired bootstrap."""

from __future__ import annotations

import pytest
import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.evaluation.policy_eval import evaluate_policy, load_policy, paired_bootstrap, select_users
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.dummy import DummyRecPolicy
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.settings import Settings
from rl4rec_core.training.trainer import RLTrainer


DUMMY = PolicyConfig.from_fields(policy="dummy")


def test_ranks_are_the_services_ranks_of_greedy_texts(tiny, service):
    policy = DummyRecPolicy.from_dataset(tiny, DUMMY)
    summary, ranks = evaluate_policy(tiny, policy, split="valid", service=service, batch_size=5)
    sp = tiny.split("valid")
    assert ranks.shape == (len(sp),) and ranks.dtype == torch.long
    # the same ranks computed by hand: full cosine scores of the greedy texts, history masked
    titles = tiny.item_titles
    texts = policy.generate(policy.build_prompts([[titles[i] for i in h] for h in sp.histories]), greedy=True)
    scores = service.calculate_reward(texts, tiny.name)
    assert torch.equal(ranks, metrics.target_ranks(scores, sp.targets, sp.histories))
    assert summary.pop("scorer") == "cosine"  # every figure says what scored it (no tuned settings here)
    assert summary == metrics.summarize(ranks)
    assert set(summary) == {"hit@5", "ndcg@5", "hit@10", "ndcg@10", "hit@20", "ndcg@20", "mrr"}


def test_chosen_users_are_ranked_as_in_the_whole_split(tiny, service):
    policy = DummyRecPolicy.from_dataset(tiny, DUMMY)
    _, all_ranks = evaluate_policy(tiny, policy, service=service, split="test")
    rows = select_users(len(all_ranks), 7, seed=5)
    assert (select_users(len(all_ranks), 7, seed=5) == rows).all() and len(rows) == 7  # seeded
    _, some = evaluate_policy(tiny, policy, service=service, split="test", users=rows)
    assert torch.equal(some, all_ranks[torch.as_tensor(rows)])


def test_trained_checkpoint_beats_untrained_on_train_users(tiny, service, tmp_path):
    cfg = Settings.of(dataset_name=tiny.name, num_steps=60, batch_size=16, group_size=4, policy="dummy",
                      learning_rate=0.1, save_every=30, checkpoint_dir=str(tmp_path / "run"), reward="ndcg@10",
                      kl_coef=0.0)
    RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False).train()
    trained = load_policy(tmp_path / "run")  # the run folder resolves to checkpoint_final
    untrained = load_policy(tmp_path / "run" / "checkpoint_step_30", trained=False)
    assert isinstance(trained, DummyRecPolicy)
    m_t, r_t = evaluate_policy(tiny, tmp_path / "run", split="train", service=service)
    m_u, r_u = evaluate_policy(tiny, untrained, split="train", service=service)
    assert torch.equal(r_t, evaluate_policy(tiny, trained, split="train", service=service)[1])
    mean, lo, hi = paired_bootstrap(metrics.ndcg_at_k(r_t, 10), metrics.ndcg_at_k(r_u, 10), n=500, seed=0)
    assert mean == pytest.approx(m_t["ndcg@10"] - m_u["ndcg@10"], abs=1e-6)
    assert mean > 0 and lo <= mean <= hi


def test_paired_bootstrap_hand_values():
    # a constant difference has no spread: every resample gives it
    assert paired_bootstrap([0.5, 0.7, 0.1], [0.4, 0.6, 0.0], n=200) == pytest.approx((0.1, 0.1, 0.1))
    # diff = [1, 0, 0, 0]: mean 0.25; a resample's mean is k/4, k ~ Binomial(4, 1/4), so the 95%
    # interval runs from 0 (P(k=0) = 0.32) to 0.75 (P(k>=3) = 0.05)
    mean, lo, hi = paired_bootstrap([1, 0, 0, 0], [0, 0, 0, 0], n=4000, seed=1)
    assert mean == 0.25 and lo == 0.0 and 0.5 <= hi <= 0.75
    # same seed, same interval
    assert paired_bootstrap([1, 0, 2], [0, 1, 1], seed=3) == paired_bootstrap([1, 0, 2], [0, 1, 1], seed=3)


def test_errors(tiny, service, tmp_path):
    policy = DummyRecPolicy.from_dataset(tiny, DUMMY)
    with pytest.raises(ConfigError, match="unknown split"):
        evaluate_policy(tiny, policy, split="validation", service=service)
    with pytest.raises(ConfigError, match="retrieval service"):
        evaluate_policy(tiny, policy)
    with pytest.raises(ConfigError, match="equal-length"):
        paired_bootstrap([1, 2], [1])
    with pytest.raises(MissingArtifactError, match="no checkpoint found"):
        load_policy(tmp_path)
