"""``--init_from``: a policy started from another one is that policy, anchors its KL there, and round-trips."""

from __future__ import annotations

import shutil

import pytest
import torch

from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.rec_policy import RecPolicy
from rl4rec_core.settings import Settings

IDS = torch.tensor([[2, 7, 9, 11, 13, 17, 19, 23]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def perturbed_policy(tiny_lm, **kw) -> RecPolicy:
    """A LoRA policy whose adapters are no longer a no-op (as after SFT)."""
    policy = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, item_noun="movie", history_len=3,
        learning_rate=1e-3, **kw))
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(hash(name) % 2**31))
    return policy


def test_init_from_starts_at_the_start_policy_and_round_trips(tiny_lm, tmp_path, one_thread):
    start = perturbed_policy(tiny_lm)
    start.save(tmp_path / "sft" / "checkpoint_final" / "policy")
    want = logits(start.model)
    # the checkpoint folder (not only its policy/) is accepted, as `rl4rec sft` prints it
    grpo = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, item_noun="movie",
        init_from=str(tmp_path / "sft" / "checkpoint_final"), kl_coef=0.0))
    # the start's adapter is merged into the weights: the same function, rounded differently (float32),
    # so these comparisons allow 1e-4; base and start differ by far more (checked below)
    assert torch.allclose(logits(grpo.model), want, atol=1e-4)  # fresh adapters are a no-op
    with grpo._reference() as ref:  # adapters off = the start policy: the KL anchor
        assert torch.allclose(logits(ref), want, atol=1e-4)
    base = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, kl_coef=0.0))
    assert not torch.allclose(logits(base.model), want, atol=1e-3)

    # train a little, save, and load back without the start's folder: the checkpoint carries it
    with torch.no_grad():
        for name, p in grpo.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)
    trained = logits(grpo.model)
    grpo.save(tmp_path / "grpo")
    shutil.rmtree(tmp_path / "sft")
    again = RecPolicy.from_pretrained(tmp_path / "grpo")
    assert torch.allclose(logits(again.model), trained, atol=1e-5)
    untrained = RecPolicy.from_pretrained(tmp_path / "grpo", trained=False)
    assert torch.allclose(logits(untrained.model), want, atol=1e-4)  # "untrained" = as it started


def test_init_from_inherits_the_start_prompt(tiny_lm, tmp_path, one_thread):
    from rl4rec_core.policy.registry import build_policy

    start = perturbed_policy(tiny_lm, response_prefix="The user will like")
    start.save(tmp_path / "start")

    class Tiny:
        name = "tiny-ml"

    cfg = Settings.of(dataset_name="tiny-ml", policy_model=tiny_lm, init_from=str(tmp_path / "start"), num_steps=1)
    policy = build_policy(cfg, Tiny())
    p = policy.config.policy
    assert p.history_len == 3 and p.response_prefix == "The user will like" and p.item_noun == "movie"
    assert p.init_from == str((tmp_path / "start").resolve())


def test_bad_init_from_gives_clear_errors(tiny_lm, tmp_path, one_thread):
    with pytest.raises(MissingArtifactError, match="no such folder.*rl4rec sft"):
        RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, init_from=str(tmp_path / "missing"), kl_coef=0.0))
    start = perturbed_policy(tiny_lm)
    start.save(tmp_path / "start")
    with pytest.raises(ConfigError, match="was trained from"):
        RecPolicy(PolicyConfig.from_fields(policy_model="gpt2", init_from=str(tmp_path / "start"), kl_coef=0.0))
    with pytest.raises(ConfigError, match="--policy dummy"):
        Settings.of(policy="dummy", init_from=str(tmp_path / "start"))
