"""The policy-gradient step of a ``RecPolicy``: log-probs, the loss, advantages and ``update``.

``PolicyLearning`` is a mixin of ``RecPolicy`` (``rl4rec_core.policy.rec_policy``), which builds
the model, tokenizer, optimizer and baseline it works on; the algorithms themselves (advantages,
surrogate loss, KL) live in ``rl4rec_core.policy.algorithms``.
"""

from __future__ import annotations

import contextlib
import logging
import time

import torch

from rl4rec_core.errors import DataError
from rl4rec_core.policy.algorithms import compute_advantages, group_advantages, kl_penalty, policy_gradient_loss
from rl4rec_core.policy.rollout import Rollout, TokenBatch, completion_logprobs, pack
from rl4rec_core.policy.shared_prefix import GroupedTokenBatch, grouped_completion_logprobs, pack_groups

log = logging.getLogger(__name__)


class PolicyLearning:
    """Learning half of ``RecPolicy``.

    Uses the policy's ``config``, ``model``, ``tokenizer``, ``device``, ``optimizer``, ``baseline``,
    ``num_updates``, ``last_rollout``, ``grad_sync``, ``_ref_model`` (full fine-tuning's frozen copy, else None),
    ``_keep_logits``, ``_shares_prompt``, ``_encode_prompts``, ``trainable_parameters``, ``autocast`` and
    ``weights_changed``.
    """

    @contextlib.contextmanager
    def _reference(self):
        """The frozen starting policy: the base with adapters off (LoRA) or the kept copy (full)."""
        if self._ref_model is not None:
            yield self._ref_model
        else:
            with self.model.disable_adapter():
                yield self.model

    def _grouping(self, prompts: list[str], texts: list[str]) -> tuple[list[str], int]:
        """(one prompt per group, samples per group) for update's arguments.

        Accepts the prompts once (``[B]``, texts ``[B*G]``) or once per text (``[B*G]``, each prompt
        repeated ``G`` times in a row, as the trainer passes them; ``G`` = ``algorithm.group_size``).
        """
        if not prompts:
            raise DataError("update got no prompts; pass the prompts the texts were generated from")
        if len(prompts) == len(texts):
            g = self.config.algorithm.group_size
            if g > 1 and len(prompts) % g == 0 and all(
                prompts[i] == prompts[i - i % g] for i in range(len(prompts))
            ):
                return list(prompts[::g]), g
            return list(prompts), 1
        if len(texts) % len(prompts):
            raise DataError(
                f"{len(texts)} texts do not split evenly over {len(prompts)} prompts; pass the prompts once "
                "(or once per text) and each prompt's samples consecutively, as generate(prompts, num_samples=G) "
                "returns them"
            )
        return list(prompts), len(texts) // len(prompts)

    def _as_rollout(self, prompts: list[str], texts: list[str]) -> Rollout:
        """The last rollout when it is these prompts/texts (exact sampled ids); else a re-tokenised one."""
        unique, g = self._grouping(prompts, texts)
        last = self.last_rollout
        if last is not None and last.num_samples == g and last.prompts == unique and last.texts == list(texts):
            return last
        enc = self.tokenizer(list(texts), add_special_tokens=False)
        return Rollout(unique, list(texts), self._encode_prompts(unique), [list(x) for x in enc["input_ids"]], g)

    def logprobs(self, batch: TokenBatch | GroupedTokenBatch, reference: bool = False) -> torch.Tensor:
        """``[n, T]`` log-probs of the batch's completion tokens under the policy (or the reference)."""
        if reference:
            with torch.no_grad(), self._reference() as ref:
                return self._logprobs(ref, batch)
        return self._logprobs(self.model, batch)

    def _logprobs(self, model, batch: TokenBatch | GroupedTokenBatch) -> torch.Tensor:
        if isinstance(batch, GroupedTokenBatch):
            return grouped_completion_logprobs(model, batch, self.config.policy.temperature)
        return completion_logprobs(model, batch, self.config.policy.temperature, self._keep_logits)

    def _micro_batches(self, rollout: Rollout) -> list[TokenBatch | GroupedTokenBatch]:
        """``micro_batch_size`` sequences per forward: whole groups sharing their prompt, or single sequences.

        A group is never split (its samples share one prompt pass), so with ``G > micro_batch_size`` a
        forward holds one group of ``G``.
        """
        mb, pad, g = self.config.policy.micro_batch_size, self.tokenizer.pad_token_id, rollout.num_samples
        if self._shares_prompt and g > 1:
            per = max(1, mb // g)
            groups = list(range(len(rollout.prompts)))
            return [pack_groups(rollout, groups[s:s + per], pad, self.device) for s in range(0, len(groups), per)]
        n = len(rollout)
        return [pack(rollout, list(range(s, min(s + mb, n))), pad, self.device) for s in range(0, n, mb)]

    def compute_loss(
        self,
        batch: TokenBatch,
        advantages: torch.Tensor,
        old_logprobs: torch.Tensor | None = None,
        ref_logprobs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Policy-gradient loss of one micro-batch (with grad): surrogate + ``kl_coef`` × k3 KL.

        advantages ``[n]``; old_logprobs / ref_logprobs ``[n, T]`` or None (no clip / no KL).
        """
        algo = self.config.algorithm
        logp = self.logprobs(batch)
        mask = batch.completion_mask
        loss, stats = policy_gradient_loss(logp, old_logprobs, advantages.to(logp.device), mask, algo.clip_eps)
        # the sampled tokens' mean -log π: an unbiased estimate of the per-token entropy, free from logp
        stats["entropy"] = float(-(logp.detach() * mask).sum() / mask.sum().clamp_min(1))
        if ref_logprobs is not None:
            kl = kl_penalty(logp, ref_logprobs, mask)
            loss = loss + algo.kl_coef * kl
            stats["kl"] = float(kl.detach())
        return loss, stats

    def _advantages(self, rollout: Rollout, rewards: torch.Tensor) -> torch.Tensor:
        algo = self.config.algorithm
        if algo.algorithm == "grpo" and rollout.num_samples == 1:
            # the original's one-sample-per-prompt call: the whole batch is the comparison group
            if len(rewards) < 2:
                raise DataError("GRPO needs at least two samples to compare; generate num_samples ≥ 2 per prompt")
            log.warning("GRPO got one sample per prompt; normalising advantages over the whole batch instead")
            return group_advantages(rewards, len(rewards), algo.normalize_std)
        if algo.algorithm == "grpo":
            return group_advantages(rewards, rollout.num_samples, algo.normalize_std)
        return compute_advantages(rewards, algo, self.baseline)

    def update(self, prompts: list[str], texts: list[str], rewards) -> dict[str, float]:
        """One policy-gradient step on these samples; returns stats.

        prompts ``[B]`` (or ``[B*G]``, each repeated per sample), texts ``[B*G]`` grouped per prompt,
        rewards ``[B*G]``. Each of ``ppo_epochs`` passes is one optimizer step over the whole batch,
        accumulated over micro-batches. Stats: loss, pg_loss, kl (0 when off), grad_norm (before
        clipping), gen_tokens (mean tokens), reward_mean/std, adv_abs_mean, num_sequences, update_s,
        and clip_frac/ratio_mean with PPO clip and ppo_epochs > 1.
        """
        t0 = time.perf_counter()
        algo = self.config.algorithm
        rollout = self._as_rollout(prompts, texts)
        rewards = torch.as_tensor(rewards, dtype=torch.float32).flatten().cpu()
        if len(rewards) != len(rollout):
            raise DataError(f"got {len(rewards)} rewards for {len(rollout)} texts; give one reward per text")
        if not torch.isfinite(rewards).all():
            raise DataError("rewards contain NaN or Inf; check the reward function")
        adv = self._advantages(rollout, rewards)
        n = len(rollout)
        batches = self._micro_batches(rollout)
        # with one epoch the ratio is exactly 1, the clip never binds and the gradient is REINFORCE's:
        # skip the extra forward pass
        clipped = algo.clip_eps is not None and algo.ppo_epochs > 1
        with self.autocast():  # bf16 matmuls on CPUs that have them, when asked (policy.cpu_bf16)
            with torch.no_grad():  # fixed targets for every inner epoch
                old = [self.logprobs(b) for b in batches] if clipped else [None] * len(batches)
                ref = [self.logprobs(b, reference=True) for b in batches] if algo.kl_coef > 0 else [None] * len(batches)
            for _ in range(algo.ppo_epochs):
                self.optimizer.zero_grad(set_to_none=True)
                totals: dict[str, float] = {}
                for b, o, r in zip(batches, old, ref):
                    loss, st = self.compute_loss(b, adv[b.indices], o, r)
                    weight = len(b.indices) / n  # micro-batch means -> the full batch's mean over sequences
                    (loss * weight).backward()
                    st["loss"] = float(loss.detach())
                    for k, v in st.items():
                        totals[k] = totals.get(k, 0.0) + v * weight
                if self.grad_sync is not None:  # data-parallel: the mean gradient of every worker's batch
                    self.grad_sync(list(self.trainable_parameters()))
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.trainable_parameters(), self.config.policy.max_grad_norm or float("inf")
                )
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_updates += 1
        self.weights_changed()
        return {
            "loss": totals["loss"],
            "pg_loss": totals["pg_loss"],
            "kl": totals.get("kl", 0.0),
            "entropy": totals["entropy"],
            **{k: totals[k] for k in ("clip_frac", "ratio_mean") if k in totals},
            "grad_norm": float(grad_norm),
            "gen_tokens": sum(rollout.gen_lengths) / n,
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()) if n > 1 else 0.0,
            "adv_abs_mean": float(adv.abs().mean()),
            "num_sequences": float(n),
            "update_s": time.perf_counter() - t0,
        }
