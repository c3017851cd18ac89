"""Supervised fine-tuning (SFT) of the policy on next-item texts, so RL starts from a competent policy.

An example is one *training* position of a user: the items before it -> the text of the item at it,
the very text embedded for retrieval (``dataset.item_texts()``) plus EOS, so a generated answer lands
on the item's embedding and stops there. Prompts are built as RL and evaluation build them. Validation
(``seq[-2]``) and test (``seq[-1]``) items are never used. ``checkpoint_final/policy`` is what
``RecPolicy.save`` writes (LoRA adapter): ``load_policy`` reads it, ``rl4rec train --init_from`` starts from it.

Shapes: ``B`` examples a step, ``n`` a micro-batch, ``C`` common prompt prefix, ``R``/``T`` longest rest/answer.
"""

from __future__ import annotations

import inspect
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rl4rec_core import paths
from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.policy import prompts as prompt_lib
from rl4rec_core.policy.rollout import Rollout, TokenBatch, completion_logprobs, pack
from rl4rec_core.settings import (
    DEFAULT_DATASET,
    DEFAULT_POLICY_MODEL,
    SFT_BATCH_SIZE,
    SFT_LEARNING_RATE,
    SFT_STEPS,
    opt,
)
from rl4rec_core import checkpoints as ckpt

Example = tuple[list[int], int]  # (history item indices, oldest first; answer item index)


@dataclass
class SFTConfig:
    """One SFT run. ``batch_size`` counts examples (user positions) per optimizer step."""

    dataset_name: str = opt(DEFAULT_DATASET, "prepared dataset")
    policy_model: str = opt(DEFAULT_POLICY_MODEL, "alias, HF name or local folder")
    num_steps: int = opt(SFT_STEPS, "optimizer steps")
    batch_size: int = opt(SFT_BATCH_SIZE, "examples (user positions) per step")
    micro_batch_size: int = opt(SFT_BATCH_SIZE, "examples per forward/backward: bounds memory, same gradient")
    # LoRA wants far more than full fine-tuning's 1e-5
    learning_rate: float = opt(SFT_LEARNING_RATE, "LoRA learning rate")
    lora_r: int = opt(16, "LoRA rank")
    history_len: int | None = opt(None, "last N history items in the prompt (default: the template's)")
    prompt_template: str = opt("next_item", "next_item, compelling, plain, or a format string with {history}; "
                               "use the RL run's")
    response_prefix: str = opt("", "start of the answer; use the RL run's (the answer is learnt as what follows it)")
    # longer answers are cut, and lose their EOS (they did not end there)
    max_answer_tokens: int = opt(48, "answer tokens learnt, EOS included")
    positions_per_user: int | None = opt(None, "each user's K most recent training positions (default: all)")
    seed: int = opt(0, "example order and LoRA initialisation")
    checkpoint_dir: str | None = opt(None, "default: checkpoints/{dataset_name}_sft")
    # a folder that holds a run is refused unless this deletes it
    overwrite: bool = opt(False, "delete an existing run in --checkpoint_dir and start over")
    log_every: int = opt(10, "console line every N steps")
    progress: bool = opt(True, "progress bar")
    device: str = opt("cpu", "cpu, cuda or auto")

    def __post_init__(self) -> None:
        if not self.dataset_name:
            raise ConfigError("dataset_name is empty; pass --dataset_name, e.g. ml-100k")
        for name in ("num_steps", "batch_size", "micro_batch_size", "lora_r", "max_answer_tokens", "log_every"):
            _positive(name, getattr(self, name))
        for name in ("history_len", "positions_per_user"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name), " (or leave it unset)")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}; e.g. --learning_rate 5e-4")
        prompt_lib.get_template(self.prompt_template)  # raises ConfigError naming the known templates

    @property
    def output_dir(self) -> Path:
        default = paths.checkpoint_dir(self.dataset_name).with_name(f"{self.dataset_name}_sft")
        return Path(self.checkpoint_dir) if self.checkpoint_dir else default


def _positive(name: str, value, hint: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}; e.g. --{name} 8{hint}")


def sft_examples(dataset, positions_per_user: int | None = None, max_history: int | None = None) -> list[Example]:
    """``(history, answer)`` pairs from training positions only, user by user, oldest first.

    With ``s = seq[:-2]`` (validation and test items removed) every ``j`` in ``1..len(s)-1`` gives
    ``(s[:j], s[j])``; ``positions_per_user=k`` keeps each user's last ``k``. ``max_history`` cuts
    histories to their last items (a prompt shows no more), bounding memory on long sequences."""
    out = []
    for s in dataset.train_histories():
        first = 1 if positions_per_user is None else max(1, len(s) - positions_per_user)
        out += [(list(s[max(0, j - max_history) if max_history else 0:j]), int(s[j])) for j in range(first, len(s))]
    return out


def build_sft_policy(config: SFTConfig):
    """A LoRA ``RecPolicy`` prompting as the RL trainer's, with SFT's learning rate and rank."""
    from rl4rec_core.policy.rec_policy import RecPolicy

    return RecPolicy(
        model_name=config.policy_model, device=config.device, lora=True, lora_r=config.lora_r,
        learning_rate=config.learning_rate, micro_batch_size=config.micro_batch_size,
        prompt_template=config.prompt_template, history_len=config.history_len,
        response_prefix=config.response_prefix, item_noun=prompt_lib.item_noun_for(config.dataset_name),
        # log-probs of the plain model; evaluating this checkpoint generates whole answers
        temperature=1.0, max_new_tokens=config.max_answer_tokens, seed=config.seed,
    )


def shared_prefix_logprobs(model, prefix: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
    """:func:`completion_logprobs` ``[n, T]`` of prompts ``prefix + rest``, the common ``prefix [C]`` run once.

    ``batch`` holds the rests (left-padded) and answers, ``[n, R + T]``. Exact: gradients flow back through
    the repeated cache. SmolLM2's prompts share 34 of ~100-150 tokens: a CPU step takes ~25% less time.
    """
    n, t_len = batch.completion_mask.shape
    cache = model(input_ids=prefix.unsqueeze(0), use_cache=True, logits_to_keep=1).past_key_values
    cache.batch_repeat_interleave(n)
    attn = torch.cat([batch.attention_mask.new_ones(n, len(prefix)), batch.attention_mask], dim=1)
    out = model(input_ids=batch.input_ids, attention_mask=attn, position_ids=batch.position_ids + len(prefix),
                past_key_values=cache, use_cache=True, logits_to_keep=t_len + 1)
    logits = out.logits[:, :-1, :].float()  # position j predicts token j + 1
    return logits.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


class SFTTrainer:
    """Next-item NLL on training positions; owns the example order, the JSONL log and the checkpoint.

    Callbacks: any of the RL trainer's hooks (``on_train_start(trainer)``, ``on_step_end(step, stats)``,
    ``on_checkpoint(step, path)``, ``on_train_end(summary)``)."""

    def __init__(self, config: SFTConfig, policy, dataset, callbacks: Sequence[Any] = ()):
        self.config, self.policy, self.dataset, self.callbacks = config, policy, dataset, list(callbacks)
        self.log = ckpt.TrainingLog(config.output_dir / ckpt.LOG_NAME)
        shown = config.history_len or prompt_lib.get_template(config.prompt_template).history_len
        self.examples = sft_examples(dataset, config.positions_per_user, max_history=shown)
        if not self.examples:
            raise DataError(f"{dataset.name!r} has no training position to learn from: a user needs >= 4 items "
                            "(history, answer, validation, test); prepare a dataset with longer sequences")
        tok = policy.tokenizer
        if tok.eos_token_id is None:
            raise ConfigError(f"the tokenizer of {config.policy_model!r} has no EOS token to end answers with")
        self.titles, self.item_texts = dataset.item_titles, dataset.item_texts()
        # every answer is one of num_items texts: tokenise each once, not once per example
        ids = tok(self.item_texts, add_special_tokens=False)["input_ids"]
        self.answers = [(list(a) + [tok.eos_token_id])[: config.max_answer_tokens] for a in ids]
        # logits_to_keep marks the HF models whose forward takes a cache; others run whole prompts
        self.share_prefix = "logits_to_keep" in inspect.signature(policy.model.get_base_model().forward).parameters
        self.step = 0

    def batches(self) -> Iterator[list[Example]]:
        """``batch_size`` examples at a time, endlessly; a fresh seeded shuffle each pass over the data."""
        rng, bs, pending = np.random.default_rng(self.config.seed), self.config.batch_size, []
        while True:
            pending += [self.examples[i] for i in rng.permutation(len(self.examples))]
            while len(pending) >= bs:
                yield pending[:bs]
                pending = pending[bs:]

    def encode(self, batch: list[Example]) -> Rollout:
        """Examples -> a one-sample-per-prompt ``Rollout`` whose "sampled" ids are the answers ``[B]``."""
        prompts = self.policy.build_prompts([[self.titles[i] for i in h] for h, _ in batch])
        # the policy's own encoding: the very ids (and truncation) its sampler continues
        ids = self.policy._encode_prompts(prompts)
        return Rollout(prompts, [self.item_texts[a] for _, a in batch], ids, [self.answers[a] for _, a in batch], 1)

    def answer_logprobs(self, rollout: Rollout, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, mask) of the answer tokens of ``rows``, both ``[n, T]``."""
        policy, pad = self.policy, self.policy.tokenizer.pad_token_id
        prompts = [rollout.prompt_ids[i] for i in rows]
        # each prompt keeps >= 1 token of its own: its last position predicts the answer's first token
        c = min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)
        if not self.share_prefix or c == 0:
            tb = pack(rollout, rows, pad, policy.device)
            return completion_logprobs(policy.model, tb, 1.0, self.share_prefix), tb.completion_mask
        rests = Rollout(rollout.prompts, rollout.texts, [p[c:] for p in rollout.prompt_ids], rollout.completion_ids, 1)
        tb = pack(rests, rows, pad, policy.device)
        prefix = torch.tensor(prompts[0][:c], device=policy.device)
        return shared_prefix_logprobs(policy.model, prefix, tb), tb.completion_mask

    def train_step(self, batch: list[Example]) -> dict[str, Any]:
        """One AdamW step on the token-mean NLL of the answers, grad norm clipped to 1."""
        t0, policy, mb = time.perf_counter(), self.policy, self.config.micro_batch_size
        rollout = self.encode(batch)
        n_tokens, total = sum(rollout.gen_lengths), 0.0
        policy.optimizer.zero_grad(set_to_none=True)
        for s in range(0, len(batch), mb):
            logp, mask = self.answer_logprobs(rollout, list(range(s, min(s + mb, len(batch)))))
            nll = -(logp * mask).sum()
            (nll / n_tokens).backward()  # the whole batch's token count: micro-batching keeps the gradient
            total += float(nll.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), 1.0)
        policy.optimizer.step()
        policy.num_updates += 1
        self.step += 1
        return {"step": self.step - 1, "loss": total / n_tokens, "tokens": n_tokens, "grad_norm": float(grad_norm),
                "time": time.perf_counter() - t0}

    def train(self) -> dict[str, Any]:
        """Run ``num_steps`` steps, then write ``checkpoint_final``; returns a summary."""
        cfg, t0 = self.config, time.perf_counter()
        prepare_output(cfg)
        self._emit("on_train_start", self)
        with tqdm(total=cfg.num_steps, desc="sft", unit="step", disable=not cfg.progress) as bar:
            for batch in self.batches():
                if self.step >= cfg.num_steps:
                    break
                stats = self.train_step(batch)
                self.log.append(stats)
                if stats["step"] % cfg.log_every == 0 or self.step == cfg.num_steps:
                    tqdm.write(f"SFT step {stats['step']} | loss {stats['loss']:.4f}")  # above the bar
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                bar.update(1)
                self._emit("on_step_end", stats["step"], stats)
        final, losses = self.save(cfg.output_dir / ckpt.FINAL_NAME), [r["loss"] for r in self.log.read()]
        summary = {"steps": self.step, "examples": len(self.examples), "first_loss": float(np.mean(losses[:10])),
                   "last_loss": float(np.mean(losses[-10:])), "final_checkpoint": str(final),
                   "training_log": str(self.log.path), "seconds": time.perf_counter() - t0}
        self._emit("on_train_end", summary)
        return summary

    def save(self, path: Path) -> Path:
        state = {"step": self.step, "kind": "sft", "rng": ckpt.capture_rng()}
        # use_dummy / stage tell load_policy (and readers of config.json) what this checkpoint holds
        ckpt.save_checkpoint(path, self.policy, state, {**asdict(self.config), "use_dummy": False, "stage": "sft"})
        self._emit("on_checkpoint", self.step, path)
        return path

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            if (fn := getattr(cb, hook, None)) is not None:
                fn(*args)


def prepare_output(config: SFTConfig) -> None:
    """Refuse a folder that holds a run (nothing written is lost silently), or clear it with ``overwrite``."""
    out = config.output_dir
    old = [p for p in out.glob("checkpoint_*") if p.is_dir()] + [p for p in [out / ckpt.LOG_NAME] if p.exists()]
    if old and not config.overwrite:
        raise ConfigError(f"{out} already holds a training run; pass --overwrite to delete it and start over, "
                          "or another --checkpoint_dir")
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()  # checkpoint folders, then the log


def run_sft(config: SFTConfig, dataset=None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Load the dataset (unless given) and the policy, train, save; returns :meth:`SFTTrainer.train`'s summary."""
    prepare_output(config)  # refuse (or clear) before the model is loaded
    dataset = load_dataset(config.dataset_name) if dataset is None else dataset
    return SFTTrainer(config, build_sft_policy(config), dataset, callbacks).train()
