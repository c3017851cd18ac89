"""Policy-gradient maths for text policies: advantages, the surrogate loss and the KL penalty.

Pure functions over tensors (no model, no tokenizer), so each is tested against hand-worked values.
Shapes: ``N`` sampled sequences (= prompts × samples per prompt), ``T`` generated tokens (right-padded,
``mask`` marks the real ones), ``G`` samples per prompt (the GRPO group).

Aggregation choice (used by both the loss and the KL): first the mean over each sequence's own tokens,
then the mean over sequences, as in the GRPO paper. Every sample then weighs the same whatever its
length; the known side effect is that per-token credit is larger in short sequences (Dr. GRPO), which
is harmless here because recommendation texts are short and capped by ``max_new_tokens``.
"""

from __future__ import annotations

import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import AlgorithmSettings

# added to a GRPO group's reward std, so a group of equal rewards gives zero advantages, not NaN
EPS = 1e-6


def group_advantages(rewards: torch.Tensor, group_size: int, normalize_std: bool = True, eps: float = EPS) -> torch.Tensor:
    """GRPO advantages: each reward minus its group's mean, divided by the group's std (+ eps).

    rewards: float ``[B*G]``, grouped: prompt i's samples at ``i*G : (i+1)*G``.
    Returns float ``[B*G]``. The std is the unbiased sample std (as TRL's GRPO), and a group of
    one sample has no spread, so its advantage is 0.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.dim() != 1:
        raise ConfigError(f"rewards must be 1-D [B*G], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ConfigError(
            f"{rewards.numel()} rewards cannot be split into groups of {group_size}; "
            "generate group_size samples per prompt (batch of prompts × group_size)"
        )
    groups = rewards.view(-1, group_size)  # [B, G]
    centred = groups - groups.mean(dim=1, keepdim=True)
    if normalize_std and group_size > 1:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


class RunningBaseline:
    """REINFORCE baseline: an exponential moving average of the mean reward.

    ``advantages(rewards)`` returns ``rewards - b`` with the baseline *before* this batch (so a batch
    never explains itself away), then updates ``b ← m·b + (1-m)·mean(rewards)``. The first batch
    starts the baseline at its own mean, so its advantages are centred rather than all positive.
    """

    def __init__(self, momentum: float):
        if not 0 <= momentum < 1:
            raise ConfigError(f"baseline momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.value: float | None = None
        self.count = 0

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """rewards: float ``[N]`` -> advantages ``[N]``; updates the baseline."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
        mean = float(rewards.mean())
        base = mean if self.value is None else self.value
        adv = rewards - base
        self.value = mean if self.value is None else self.momentum * self.value + (1 - self.momentum) * mean
        self.count += 1
        return adv

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "value": self.value, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.momentum = float(state["momentum"])
        self.value = None if state["value"] is None else float(state["value"])
        self.count = int(state["count"])


def compute_advantages(
    rewards: torch.Tensor, algorithm: AlgorithmSettings, baseline: RunningBaseline | None = None
) -> torch.Tensor:
    """Advantages ``[N]`` for rewards ``[N]`` under the ``algorithm`` settings (REINFORCE needs ``baseline``)."""
    if algorithm.algorithm == "grpo":
        return group_advantages(rewards, algorithm.group_size, algorithm.normalize_std)
    if baseline is None:
        raise ConfigError("REINFORCE needs a RunningBaseline; pass baseline=RunningBaseline(algorithm.baseline_momentum)")
    return baseline.advantages(rewards)


def _sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values, mask ``[N, T]`` -> scalar: token mean per sequence, then mean over sequences.

    A sequence with no tokens (empty generation) contributes 0 instead of NaN.
    """
    mask = mask.to(values.dtype)
    per_seq = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return per_seq.mean()


def policy_gradient_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The surrogate loss whose gradient is the policy gradient.

    logprobs: ``[N, T]`` log π(token) of the generated tokens under the current policy (with grad).
    old_logprobs: ``[N, T]`` the same under the policy that sampled them (no grad), or ``None``.
    advantages: ``[N]``, one per sequence, broadcast over its tokens.
    mask: ``[N, T]`` 1 for generated tokens, 0 for padding.

    REINFORCE (``clip_eps`` or ``old_logprobs`` is ``None``): per-token ``-A · log π``.
    PPO clip: ratio ``ρ = exp(log π - log π_old)``, per-token ``-min(ρ·A, clip(ρ, 1±ε)·A)``.
    Both are aggregated by :func:`_sequence_mean`. Returns ``(loss scalar, stats)`` where stats has
    ``pg_loss`` and, for PPO, ``clip_frac`` (share of tokens where the clipped term was chosen) and
    ``ratio_mean``.
    """
    if logprobs.shape != mask.shape or advantages.shape != logprobs.shape[:1]:
        raise ValueError(
            f"shape mismatch: logprobs {tuple(logprobs.shape)}, mask {tuple(mask.shape)}, "
            f"advantages {tuple(advantages.shape)} (want [N, T], [N, T], [N])"
        )
    adv = advantages.to(logprobs.dtype).unsqueeze(1)  # [N, 1]
    stats: dict[str, float] = {}
    if clip_eps is None or old_logprobs is None:
        per_token = -adv * logprobs
    else:
        ratio = torch.exp(logprobs - old_logprobs.detach())
        unclipped = ratio * adv
        clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv
        per_token = -torch.minimum(unclipped, clipped)
        m = mask.bool()
        with torch.no_grad():
            stats["clip_frac"] = float((clipped < unclipped)[m].float().mean()) if m.any() else 0.0
            stats["ratio_mean"] = float(ratio[m].mean()) if m.any() else 1.0
    loss = _sequence_mean(per_token, mask)
    stats["pg_loss"] = float(loss.detach())
    return loss, stats


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(π ‖ π_ref) estimated from the sampled tokens with Schulman's k3 estimator.

    Per token, with ``d = log π_ref - log π``: ``k3 = exp(d) - d - 1``. It is ≥ 0 for every token,
    unbiased for the KL when tokens are sampled from π, and has lower variance than ``-d`` (k1).
    logprobs ``[N, T]`` (with grad), ref_logprobs ``[N, T]`` (no grad), mask ``[N, T]`` -> scalar,
    aggregated like the loss (token mean per sequence, then mean over sequences).
    """
    d = ref_logprobs.detach() - logprobs
    return _sequence_mean(torch.exp(d) - d - 1, mask)
