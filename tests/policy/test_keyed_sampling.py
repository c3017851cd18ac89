"""Keyed sampling: a prompt's samples depend on its seed alone, not on the batch around it, and they are
real samples of the policy's distribution (Gumbel-max), for the LLM and the dummy policy."""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.dummy import DummyRecPolicy
from rl4rec_core.policy.keyed_sampling import KeyedGumbel, sample_key
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.rec_policy import RecPolicy

pytestmark = pytest.mark.usefixtures("one_thread")
HISTORIES = [["Toy Story (1995)"], ["Heat (1995)", "Casino (1995)"], ["Fargo (1996)"], ["Babe (1995)"]]


def test_sample_key_is_stable_and_spreads():
    assert sample_key(1, 2) == sample_key(1, 2)  # no per-process hash salt
    assert len({sample_key(0, i) for i in range(1000)}) == 1000
    assert 0 <= sample_key(2**70, -5) < 2**63


def test_gumbel_max_samples_the_softmax():
    """argmax(logits + Gumbel noise) over many keys has the softmax's frequencies."""
    logits = torch.tensor([[2.0, 1.0, 0.0, float("-inf")]])
    n = 4000
    counts = torch.zeros(4)
    for seed in range(n):
        counts[int(KeyedGumbel([seed])(None, logits.clone()).argmax())] += 1
    expected = torch.softmax(logits, -1)[0]
    assert counts[3] == 0  # a masked token is never drawn
    assert torch.allclose(counts / n, expected, atol=0.025)


def test_llm_samples_depend_on_the_seed_not_the_batch(tiny_lm):
    policy = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, max_new_tokens=6, learning_rate=0.05,
        lora_r=8, seed=0, group_size=3, kl_coef=0.0))
    prompts = policy.build_prompts(HISTORIES)
    seeds = [11, 22, 33, 44]
    whole = policy.generate(prompts, num_samples=3, seeds=seeds)
    torch.manual_seed(123)  # torch's generator plays no part
    halves = policy.generate(prompts[2:], num_samples=3, seeds=seeds[2:]) + policy.generate(
        prompts[:2], num_samples=3, seeds=seeds[:2])
    assert halves[6:] + halves[:6] == whole
    other = policy.generate(prompts, num_samples=3, seeds=[s + 1 for s in seeds])
    assert other != whole  # a different key draws different samples
    assert len(set(whole[:3])) > 1  # a prompt's samples differ from each other
    with pytest.raises(ConfigError, match="one seed per prompt"):
        policy.generate(prompts, num_samples=3, seeds=seeds[:2])


def test_dummy_samples_depend_on_the_seed_not_the_batch():
    policy = DummyRecPolicy([f"w{i}" for i in range(50)], PolicyConfig.from_fields(policy="dummy", dummy_words=5,
        kl_coef=0.0))
    prompts = ["Recently watched: a", "Recently watched: b", "Recently watched: c"]
    whole = policy.generate(prompts, num_samples=4, seeds=[5, 6, 7])
    assert policy.generate(prompts[1:], num_samples=4, seeds=[6, 7]) == whole[4:]
    assert policy.generate(prompts, num_samples=4, seeds=[8, 6, 7])[:4] != whole[:4]
