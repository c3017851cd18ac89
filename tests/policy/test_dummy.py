"""DummyRecPolicy: the RecPolicy interface, determinism, checkpoints, and that it really learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.dummy import DummyRecPolicy, build_vocab
from rl4rec_core.settings import Settings
from rl4rec_core.training.trainer import RLTrainer
from tests.helpers.tiny_recdata import WordVectorEncoder, make_service, write_tiny_dataset


@pytest.fixture
def tiny(rl4rec_dirs):
    return load_dataset(write_tiny_dataset(rl4rec_dirs["data"]))


@pytest.fixture(scope="module")
def minilm():
    from rl4rec_core.embeddings.encoders import make_encoder

    return make_encoder("all-MiniLM-L6-v2", backend="sentence-transformers")


def test_vocab_comes_from_item_texts(tiny):
    policy = DummyRecPolicy.from_dataset(tiny, PolicyConfig.from_fields(policy="dummy", kl_coef=0.0))
    # genres and title words, lower-cased, stop words and years dropped
    assert {"horror", "western", "sci", "unforgiven", "tombstone"} <= set(policy.vocab)
    assert "the" not in policy.vocab and not any(w.isdigit() for w in policy.vocab)
    assert build_vocab(["Alien Alien Brazil", "Brazil Alien"], size=1) == ["alien"]


def test_generate_is_grouped_and_seeded(tiny):
    config = PolicyConfig.from_fields(policy="dummy", seed=3, kl_coef=0.0)
    a, b = DummyRecPolicy.from_dataset(tiny, config), DummyRecPolicy.from_dataset(tiny, config)
    prompts = a.build_prompts([["Carrie", "Fog, The"], ["Tombstone"], ["Brazil"]])
    texts = a.generate(prompts, num_samples=4)
    assert len(texts) == 12 and all(len(t.split()) == a.num_words for t in texts)
    assert texts == b.generate(prompts, num_samples=4)  # same seed, same samples
    greedy = a.generate(prompts, num_samples=2, greedy=True)
    assert greedy[0] == greedy[1] and len(set(greedy[0].split())) == a.num_words


def test_update_moves_probability_to_rewarded_words(tiny):
    policy = DummyRecPolicy.from_dataset(tiny, PolicyConfig.from_fields(policy="dummy", seed=0, learning_rate=0.1,
        kl_coef=0.0))
    prompts = policy.build_prompts([["Carrie"], ["Tombstone"]])
    reps = [p for p in prompts for _ in range(4)]
    h = policy.index["horror"]
    before = torch.softmax(policy.logits(prompts), -1)[:, h].mean()
    for _ in range(30):
        texts = policy.generate(prompts, num_samples=4)
        rewards = torch.tensor([float(t.split().count("horror")) for t in texts])
        stats = policy.update(reps, texts, rewards)
    after = torch.softmax(policy.logits(prompts), -1)[:, h].mean()
    assert after > 2 * before
    assert {"loss", "kl", "entropy", "gen_len"} <= stats.keys() and stats["kl"] > 0


def test_update_rejects_mismatched_lengths(tiny):
    policy = DummyRecPolicy.from_dataset(tiny, PolicyConfig.from_fields(policy="dummy", kl_coef=0.0))
    with pytest.raises(ValueError, match="one each"):
        policy.update(["p"], ["a b", "c d"], torch.zeros(2))


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="vocabulary"):
        DummyRecPolicy(["only"], PolicyConfig.from_fields(policy="dummy", kl_coef=0.0))
    with pytest.raises(ConfigError, match="learning_rate"):
        DummyRecPolicy(["a", "b"], PolicyConfig.from_fields(policy="dummy", learning_rate=0, kl_coef=0.0))


def test_save_load_round_trip_resumes_sampling(tiny, tmp_path):
    policy = DummyRecPolicy.from_dataset(tiny, PolicyConfig.from_fields(policy="dummy", seed=1,
        algorithm="reinforce", group_size=2, kl_coef=0.0))
    prompts = policy.build_prompts([["Carrie"], ["Brazil"]])
    reps = [p for p in prompts for _ in range(2)]
    for _ in range(3):
        texts = policy.generate(prompts, num_samples=2)
        policy.update(reps, texts, torch.tensor([1.0, 0.0, 0.5, 0.2]))
    policy.save(tmp_path / "p")
    restored = DummyRecPolicy.from_dir(tmp_path / "p")
    assert torch.equal(restored.logits(prompts), policy.logits(prompts))
    assert restored.baseline.state_dict() == policy.baseline.state_dict()
    # the sampling generator continues where it stopped, so a resumed run draws the same texts
    assert restored.generate(prompts, num_samples=2) == policy.generate(prompts, num_samples=2)
    fresh = DummyRecPolicy.from_dir(tmp_path / "p", trained=False)
    assert torch.count_nonzero(fresh.logits(prompts)) == 0


def _assert_learns(tiny, service):
    cfg = Settings.of(dataset_name=tiny.name, num_steps=50, batch_size=16, group_size=4, policy="dummy",
                      save_every=50, seed=0, reward="ndcg@10")
    policy = DummyRecPolicy.from_dataset(tiny, PolicyConfig.from_fields(policy="dummy", seed=0, learning_rate=0.1,
        group_size=4, kl_coef=0.0))
    trainer = RLTrainer(cfg, policy, service, tiny, progress=False)
    trainer.train()
    rewards = np.array([r["avg_reward"] for r in trainer.log.read()])
    assert len(rewards) == 50
    assert rewards[-15:].mean() > rewards[:15].mean() + 0.05, rewards.round(3)


def test_dummy_policy_learns_word_vector_retrieval(tiny):
    """50 GRPO steps against a real RetrievalService over small random word-vector embeddings."""
    _assert_learns(tiny, make_service(tiny, WordVectorEncoder()))


@pytest.mark.slow
def test_dummy_policy_learns_minilm_retrieval(tiny, minilm):
    """The same against all-MiniLM-L6-v2 (the default embedder): the average reward goes up."""
    _assert_learns(tiny, make_service(tiny, minilm))


def test_with_candidates_it_picks_among_them_and_learns_which(tiny):
    config = PolicyConfig.from_fields(policy="dummy", seed=2, learning_rate=0.1, kl_coef=0.0, group_size=6)
    policy, twin = DummyRecPolicy.from_dataset(tiny, config), DummyRecPolicy.from_dataset(tiny, config)
    cands = [["Carrie", "Tombstone", "Brazil"], ["Unforgiven", "Alien", "Fog, The"]]
    prompts = policy.build_prompts([["Omen, The"], ["High Noon"]], candidates=cands)
    assert "Candidates: 1. Carrie; 2. Tombstone; 3. Brazil" in prompts[0]
    texts = policy.generate(prompts, num_samples=6)
    assert all(t in cands[i // 6] for i, t in enumerate(texts))  # each user's picks are its own candidates
    twin.build_prompts([["Omen, The"], ["High Noon"]], candidates=cands)
    assert twin.generate(prompts, num_samples=6) == texts
    assert policy.generate(prompts, 2, seeds=[5, 6]) == policy.generate(prompts, 2, seeds=[5, 6])
    reps = [p for p in prompts for _ in range(6)]
    for _ in range(40):  # reward the base's second candidate, whatever it is
        texts = policy.generate(prompts, num_samples=6)
        rewards = torch.tensor([float(t == cands[i // 6][1]) for i, t in enumerate(texts)])
        stats = policy.update(reps, texts, rewards)
    assert policy.generate(prompts, 1, greedy=True) == ["Tombstone", "Alien"]
    assert int(policy.positions[:3].argmax()) == 1 and stats["entropy"] < np.log(3)
    with pytest.raises(ValueError, match="not a candidate"):
        policy.update(reps[:6], ["Star Wars"] * 6, torch.arange(6.0))
