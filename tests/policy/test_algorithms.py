"""RL maths against hand-worked values (the working is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.algorithms import (
    RunningBaseline,
    compute_advantages,
    group_advantages,
    kl_penalty,
    policy_gradient_loss,
)
from rl4rec_core.settings import AlgorithmSettings


def test_group_advantages_normalised_within_each_group():
    # group 1 = [1, 2, 3]: mean 2, unbiased std sqrt((1 + 0 + 1) / 2) = 1 -> [-1, 0, 1]
    # group 2 = [5, 5, 5]: no spread -> 0 (eps keeps it finite)
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0]), group_size=3, eps=1e-6)
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]), atol=1e-5)
    # [0, 1]: mean 0.5, unbiased std sqrt(0.25 + 0.25) = 0.70711 -> ±0.5 / 0.70711 = ±0.70711
    adv = group_advantages(torch.tensor([0.0, 1.0]), group_size=2)
    assert torch.allclose(adv, torch.tensor([-0.70711, 0.70711]), atol=1e-4)


def test_group_advantages_centre_only():
    # [1, 2, 3] - 2 = [-1, 0, 1]; [5, 5, 8] - 6 = [-1, -1, 2]
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 8.0]), group_size=3, normalize_std=False)
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0, -1.0, -1.0, 2.0]))


def test_group_advantages_rejects_uneven_batch():
    with pytest.raises(ConfigError, match="groups of 4"):
        group_advantages(torch.zeros(6), group_size=4)


def test_running_baseline_uses_previous_value_then_updates():
    b = RunningBaseline(momentum=0.5)
    # first batch [1, 3]: baseline starts at its mean 2 -> adv [-1, 1]; b = 2
    assert torch.allclose(b.advantages(torch.tensor([1.0, 3.0])), torch.tensor([-1.0, 1.0]))
    # second batch [4, 6] (mean 5): adv = [4, 6] - 2 = [2, 4]; b = 0.5*2 + 0.5*5 = 3.5
    assert torch.allclose(b.advantages(torch.tensor([4.0, 6.0])), torch.tensor([2.0, 4.0]))
    assert b.value == pytest.approx(3.5)
    # state round trip: a fresh baseline continues exactly
    c = RunningBaseline(0.9)
    c.load_state_dict(b.state_dict())
    assert torch.allclose(c.advantages(torch.tensor([3.5])), torch.tensor([0.0]))
    assert c.count == 3 and c.momentum == 0.5


def test_compute_advantages_dispatches_on_algorithm():
    r = torch.tensor([0.0, 1.0, 2.0, 2.0])
    grpo = compute_advantages(r, AlgorithmSettings(algorithm="grpo", group_size=2))
    assert torch.allclose(grpo, torch.tensor([-0.70711, 0.70711, 0.0, 0.0]), atol=1e-4)
    # REINFORCE, first batch: r - mean(r) = r - 1.25
    rf = compute_advantages(r, AlgorithmSettings(algorithm="reinforce", group_size=1), RunningBaseline(0.9))
    assert torch.allclose(rf, r - 1.25)
    with pytest.raises(ConfigError, match="RunningBaseline"):
        compute_advantages(r, AlgorithmSettings(algorithm="reinforce", group_size=1))


def test_reinforce_loss_and_gradient():
    # seq 1: A=1, tokens log π = [-1, -2] -> per token [1, 2] -> mean 1.5
    # seq 2: A=-2, tokens log π = [-0.5, (pad)] -> per token [-1] -> mean -1
    # loss = (1.5 - 1) / 2 = 0.25
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, stats = policy_gradient_loss(logp, None, torch.tensor([1.0, -2.0]), mask)
    assert loss.item() == pytest.approx(0.25)
    assert stats["pg_loss"] == pytest.approx(0.25)
    loss.backward()
    # d/d log π = -A / len(seq) / N: seq 1 -> -1/2/2 = -0.25 each; seq 2 -> 2/1/2 = 1; padding -> 0
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -0.25], [1.0, 0.0]]))


def test_ppo_clipped_loss():
    # old log π = 0, ratios ρ = [[1.5, 0.5], [1.1, 1.0]], A = [1, -1], ε = 0.2
    # seq 1 (A=1):  ρ=1.5 -> min(1.5, 1.2) = 1.2;  ρ=0.5 -> min(0.5, 0.8) = 0.5;  loss -(1.2+0.5)/2 = -0.85
    # seq 2 (A=-1): ρ=1.1 -> min(-1.1, -1.1) = -1.1; ρ=1.0 -> -1.0;              loss (1.1+1.0)/2 = 1.05
    # loss = (-0.85 + 1.05) / 2 = 0.1; clipped term chosen only for ρ=1.5 -> clip_frac 1/4
    ratios = torch.tensor([[1.5, 0.5], [1.1, 1.0]])
    logp = ratios.log().requires_grad_(True)
    loss, stats = policy_gradient_loss(logp, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 2), 0.2)
    assert loss.item() == pytest.approx(0.1, abs=1e-6)
    assert stats["clip_frac"] == pytest.approx(0.25)
    assert stats["ratio_mean"] == pytest.approx((1.5 + 0.5 + 1.1 + 1.0) / 4)
    loss.backward()
    # the clipped token has no gradient; an unclipped one gets -A·ρ/len/N = -1·0.5/2/2 = -0.125
    assert logp.grad[0, 0].item() == 0.0
    assert logp.grad[0, 1].item() == pytest.approx(-0.125)


def test_ppo_gradient_equals_reinforce_on_policy():
    # at ρ = 1 (first inner epoch) the clipped surrogate has the REINFORCE gradient
    logp_a = torch.tensor([[-1.0, -2.0, -0.3]], requires_grad=True)
    logp_b = logp_a.detach().clone().requires_grad_(True)
    adv, mask = torch.tensor([0.7]), torch.tensor([[1, 1, 0]])
    policy_gradient_loss(logp_a, None, adv, mask)[0].backward()
    policy_gradient_loss(logp_b, logp_b.detach(), adv, mask, clip_eps=0.2)[0].backward()
    assert torch.allclose(logp_a.grad, logp_b.grad)


def test_kl_penalty_k3():
    # token 1: d = 0 -> 0; token 2: d = log 1 - log 0.5 = ln 2 -> 2 - ln 2 - 1 = 0.30685; mean = 0.15343
    logp = torch.tensor([[0.0, math.log(0.5)], [-1.0, -1.0]])
    ref = torch.tensor([[0.0, 0.0], [-1.0, -1.0]])
    mask = torch.tensor([[1, 1], [0, 0]])  # second sequence is empty: contributes 0, not NaN
    # (0.15343 + 0) / 2 = 0.076713
    assert kl_penalty(logp, ref, mask).item() == pytest.approx((1 - math.log(2)) / 4, abs=1e-6)
    assert kl_penalty(ref, ref, torch.ones(2, 2)).item() == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"algorithm": "ppo"}, "unknown algorithm 'ppo'"),
        ({"group_size": 1}, "GRPO needs group_size >= 2"),
        ({"group_size": 0, "algorithm": "reinforce"}, "group_size must be a positive integer"),
        ({"kl_coef": -0.1}, "kl_coef"),
        ({"clip_eps": 1.5}, "clip_eps"),
        ({"ppo_epochs": 2}, "set --clip_eps"),
        ({"ppo_epochs": 0}, "ppo_epochs must be a positive integer"),
        ({"baseline_momentum": 1.0}, "baseline_momentum"),
    ],
)
def test_algorithm_settings_reject_unworkable_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AlgorithmSettings(**kwargs)


def test_algorithm_settings_accept_ppo_with_clip():
    cfg = AlgorithmSettings(ppo_epochs=3, clip_eps=0.2, kl_coef=0.05)
    assert cfg.algorithm == "grpo" and cfg.group_size == 4
