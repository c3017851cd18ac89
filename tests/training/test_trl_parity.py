"""Our GRPO / PPO-clip / KL maths against TRL's ``GRPOTrainer`` (the field's reference implementation).

Same tiny model (two copies of the same weights), same batch (a ``TokenBatch`` of 2 prompts x 3 completions of
different lengths), same advantages, old and reference log-probs; our ``PolicyLearning.compute_loss`` against
TRL's own ``GRPOTrainer._compute_loss`` on the prepared inputs, loss and every parameter's gradient.

Where our definition differs from TRL's on purpose, the difference is pinned here and explained in
docs/training.md ("Agreement with TRL"):
- ``use_bias_correction_kl`` (TRL's default since 1.x) multiplies the k3 KL by the importance ratio; ours is the
  GRPO paper's unweighted k3: TRL's loss = ours + ``kl_coef * seq_mean(k3 * (ratio - 1))``, gradients included;
- one epoch (no old log-probs): our surrogate is ``-A log pi`` (value depends on log pi), TRL's is the ratio form
  ``-A pi / pi.detach()`` (value ``-A``): the same gradient, the values differ by ``seq_mean(-A (log pi - 1))``;
- the GRPO advantages divide by ``std + eps``: TRL's eps is 1e-4, our default 1e-6 (equal with eps=1e-4).
TRL's default ``loss_type`` is ``dapo`` (a token mean over the batch); ours is its ``grpo`` (sequence mean).
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("trl", reason="the TRL parity test needs the dev extra (pip install -e '.[dev]')")

from rl4rec_core.policy.rollout import Rollout, pack  # noqa: E402
from rl4rec_core.training.algorithms import AlgoConfig, group_advantages  # noqa: E402

TEMPERATURE, KL, CLIP, G = 0.7, 0.1, 0.2, 3
TOL = 1e-6


@pytest.fixture(scope="module")
def policy(tiny_lm, one_thread):
    """Our RecPolicy on the tiny LM, full fine-tuning (so both sides train the same parameters)."""
    from rl4rec_core.policy.rec_policy import RecPolicy

    algo = AlgoConfig(group_size=G, kl_coef=KL, clip_eps=CLIP, ppo_epochs=2)
    return RecPolicy(model_name=tiny_lm, lora=False, temperature=TEMPERATURE, device="cpu", algo=algo)


def _trl_trainer(policy, tmp_path_factory, **overrides):
    """A real ``GRPOTrainer`` on a copy of the policy's weights, configured as our update: ``loss_type="grpo"``,
    group-scaled rewards, token-level ratios, PPO clip ``CLIP``, KL weight ``KL``, the same temperature."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl")), per_device_train_batch_size=2 * G, num_generations=G,
        max_completion_length=8, temperature=TEMPERATURE, beta=KL, epsilon=CLIP, num_iterations=2,
        loss_type="grpo", scale_rewards="group", importance_sampling_level="token",
        report_to="none", use_cpu=True, bf16=False, **overrides,
    )
    trainer = GRPOTrainer(
        model=copy.deepcopy(policy.model), args=args, processing_class=policy.tokenizer,
        reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),  # never called: no generation here
        train_dataset=Dataset.from_dict({"prompt": ["a user liked these movies"] * (2 * G)}),
    )
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop: one micro-batch per step
    trainer.model.train()  # TRL's "train" mode; the tiny Llama has no dropout, as our policy
    return trainer


@pytest.fixture(scope="module")
def trl_same_kl(policy, tmp_path_factory):
    return _trl_trainer(policy, tmp_path_factory, use_bias_correction_kl=False)


@pytest.fixture(scope="module")
def trl_default(policy, tmp_path_factory):
    return _trl_trainer(policy, tmp_path_factory)


@pytest.fixture(scope="module")
def batch(policy):
    """2 prompts of 5 tokens (equal length: TRL passes no position ids) x 3 completions of 1-4 tokens; rewards,
    advantages (eps 1e-4, as TRL), log-probs now, old ones (an earlier epoch) and the reference's."""
    gen = torch.Generator().manual_seed(0)
    vocab = len(policy.tokenizer)
    prompts = [torch.randint(6, vocab, (5,), generator=gen).tolist() for _ in range(2)]
    completions = [torch.randint(6, vocab, (n,), generator=gen).tolist() for n in (4, 2, 3, 1, 4, 3)]
    tb = pack(Rollout(["p0", "p1"], ["t"] * 6, prompts, completions, G), list(range(6)),
              policy.tokenizer.pad_token_id, "cpu")
    rewards = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.3, 0.8])
    with torch.no_grad():
        now = policy.logprobs(tb)
        old = now + 0.3 * torch.randn(now.shape, generator=gen)  # far enough that some tokens clip
        ref = now + 0.2 * torch.randn(now.shape, generator=gen)
    return {"tb": tb, "adv": group_advantages(rewards, G, eps=1e-4), "rewards": rewards, "now": now, "old": old,
            "ref": ref}


def _ours(policy, b, old):
    policy.model.zero_grad(set_to_none=True)
    loss, _ = policy.compute_loss(b["tb"], b["adv"], old, b["ref"])
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in policy.model.named_parameters()}


def _trl(trainer, b, old):
    tb, p = b["tb"], b["tb"].prompt_len
    inputs = {"prompt_ids": tb.input_ids[:, :p], "prompt_mask": tb.attention_mask[:, :p],
              "completion_ids": tb.completion_ids, "completion_mask": tb.completion_mask, "advantages": b["adv"],
              "old_per_token_logps": old, "ref_per_token_logps": b["ref"],
              "num_items_in_batch": tb.completion_mask.sum()}
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def _seq_mean(values, mask):
    mask = mask.float()
    return ((values * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def test_log_probs_are_trls(policy, trl_same_kl, batch):
    tb, p = batch["tb"], batch["tb"].prompt_len
    with torch.no_grad():
        theirs, _, _ = trl_same_kl._get_per_token_logps_and_entropies(
            trl_same_kl.model, tb.input_ids, tb.attention_mask, tb.input_ids.shape[1] - p)
    mask = tb.completion_mask.bool()
    assert float((theirs - batch["now"])[mask].abs().max()) <= TOL


def test_ppo_clip_with_kl_equals_trls_grpo_loss(policy, trl_same_kl, batch):
    """Epoch 2 of PPO-clip (old log-probs from the sampler) with the k3 KL: loss and gradients as TRL's."""
    ours, ours_grad = _ours(policy, batch, batch["old"])
    theirs, theirs_grad = _trl(trl_same_kl, batch, batch["old"])
    assert float(ours) == pytest.approx(float(theirs), abs=TOL)
    assert _max_diff(ours_grad, theirs_grad) <= TOL
    ratio = torch.exp(batch["now"] - batch["old"])
    assert ((ratio - 1).abs() > CLIP)[batch["tb"].completion_mask.bool()].any()  # the clip did bind somewhere


def test_trls_bias_corrected_kl_adds_k3_times_ratio_minus_one(policy, trl_default, batch):
    """TRL's default weights the KL by the importance ratio; pinned: TRL = ours + KL * seq_mean(k3 * (ratio - 1))."""
    assert trl_default.args.use_bias_correction_kl
    tb = batch["tb"]
    policy.model.zero_grad(set_to_none=True)
    loss, _ = policy.compute_loss(tb, batch["adv"], batch["old"], batch["ref"])
    logp = policy.logprobs(tb)
    d = batch["ref"] - logp
    extra = KL * _seq_mean((torch.exp(d) - d - 1) * (torch.exp(logp - batch["old"]) - 1), tb.completion_mask)
    total = loss + extra
    total.backward()
    corrected = {n: p.grad.clone() for n, p in policy.model.named_parameters()}
    theirs, theirs_grad = _trl(trl_default, batch, batch["old"])
    assert float(total.detach()) == pytest.approx(float(theirs), abs=TOL)
    assert _max_diff(corrected, theirs_grad) <= TOL
    assert abs(float(extra.detach())) > 1e-4  # a real difference, not rounding


def test_one_epoch_has_trls_gradient_and_a_different_value(policy, trl_same_kl, batch):
    """Without old log-probs: our -A log pi vs TRL's ratio form; same gradient, values differ by seq_mean(-A (log pi - 1))."""
    ours, ours_grad = _ours(policy, batch, None)
    theirs, theirs_grad = _trl(trl_same_kl, batch, None)
    assert _max_diff(ours_grad, theirs_grad) <= TOL
    adv = batch["adv"].unsqueeze(1)
    gap = _seq_mean(-adv * (batch["now"] - 1), batch["tb"].completion_mask)
    assert float(ours - theirs) == pytest.approx(float(gap), abs=TOL)
    assert abs(float(gap)) > 1e-3


def test_group_advantages_are_trls_with_its_eps(batch):
    """TRL (GRPOTrainer._generate_and_score_completions, scale_rewards="group"): (r - group mean) / (group std + 1e-4)
    with its nanstd (the unbiased std). Ours with eps=1e-4 is that; our default eps is 1e-6."""
    from trl.trainer.utils import nanstd

    rewards = batch["rewards"]
    groups = rewards.view(-1, G)
    mean = torch.nanmean(groups, dim=1).repeat_interleave(G)
    std = nanstd(groups, dim=1).repeat_interleave(G)
    theirs = (rewards - mean) / (std + 1e-4)
    assert torch.allclose(group_advantages(rewards, G, eps=1e-4), theirs, atol=TOL)
    assert AlgoConfig().eps == 1e-6
    assert not torch.allclose(group_advantages(rewards, G), theirs, atol=TOL)
