"""Supervised fine-tuning (SFT) of the policy on next-item texts, so RL starts from a competent policy.

An example is one *training* position of a user: the items before it -> the text of the item at it,
the very text embedded for retrieval (``dataset.item_texts()``) plus EOS, so a generated answer lands
on the item's embedding and stops there. Prompts are built as RL and evaluation build them. Validation
(``seq[-2]``) and test (``seq[-1]``) items are never used. ``checkpoint_final/policy`` is what
``RecPolicy.save`` writes (LoRA adapter): ``load_policy`` reads it, ``rl4rec train --init_from`` starts from it.

With a base recommender (``fusion.base`` set, the fused recipe) the prompt is the candidates prompt: the
examples are the training positions whose target is among the base's top-K candidates computed from the
history before the position (``candidates``: histories -> item indices ``[B, K]``, e.g. the retrieval
service's ``candidates`` or a base scorer), and the answer is the target's *title* (the candidates are
shown as titles; the policy names one). The others are dropped, and the count is said.

Shapes: ``B`` examples a step, ``n`` a micro-batch, ``C`` common prompt prefix, ``R``/``T`` longest rest/answer.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rl4rec_core import checkpoints as ckpt
from rl4rec_core import paths
from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.policy import prompts as prompt_lib
from rl4rec_core.policy.rollout import Rollout, TokenBatch, completion_logprobs, pack
from rl4rec_core.progress import bars_wanted
from rl4rec_core.settings import (
    DEFAULT_PROMPT_TEMPLATE,
    AlgorithmSettings,
    FusionSettings,
    PolicySettings,
    RecipeSettings,
    RunSettings,
    Settings,
    TrainerSettings,
)
from rl4rec_core.training.run_lock import RunLock
from rl4rec_core.write_errors import saving_into

Example = tuple[list[int], int]  # (history item indices, oldest first; answer item index)
# with candidates: (history, answer, the base's top-K item indices for that history, best first)
CandidateExample = tuple[list[int], int, list[int]]
# histories (item indices, oldest first) -> the base's top-K of each, [B, K] (a LongTensor or nested lists)
CandidateSource = Callable[[list[list[int]]], Any]


@dataclass(frozen=True)
class SFTConfig:
    """One SFT run, all from the settings groups (no defaults of its own): the dataset, seed and device
    (``run``), the policy it trains and its prompt (``policy``; always LoRA), the ``sft_*`` fields of
    ``recipe`` and, of ``trainer``, the output folder (``checkpoint_dir``, default
    ``checkpoints/{dataset}_sft``), ``overwrite`` and ``log_every``; ``fusion``: with a base, the candidates
    prompt and its ``num_candidates``."""

    run: RunSettings
    policy: PolicySettings
    recipe: RecipeSettings
    trainer: TrainerSettings
    progress: bool
    fusion: FusionSettings = field(default_factory=FusionSettings)

    def __post_init__(self) -> None:
        for name, cls in (("run", RunSettings), ("policy", PolicySettings), ("recipe", RecipeSettings),
                          ("trainer", TrainerSettings), ("fusion", FusionSettings)):
            if isinstance(getattr(self, name), dict):  # from a flow's task parameter (JSON)
                object.__setattr__(self, name, cls(**getattr(self, name)))
        if len(self.run.datasets) > 1:
            raise ConfigError(f"SFT teaches one dataset's titles, got {self.run.dataset_name!r}; run it per dataset")
        if self.policy.policy != "llm":
            raise ConfigError("SFT trains an LLM policy; drop --policy dummy")
        if self.policy.init_from:
            raise ConfigError("SFT starts from --policy_model, not --init_from; drop --init_from")
        if self.recipe.sft_steps < 1:
            raise ConfigError("an SFT run needs --sft_steps >= 1, e.g. --sft_steps 250")

    @property
    def output_dir(self) -> Path:
        name = self.run.dataset_name
        default = paths.checkpoint_dir(name).with_name(f"{name}_sft")
        return Path(self.trainer.checkpoint_dir) if self.trainer.checkpoint_dir else default

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def candidate_examples(dataset, candidates: CandidateSource, positions_per_user: int | None = None,
                       max_history: int | None = None, k: int | None = None,
                       batch_size: int = 256) -> tuple[list[CandidateExample], int]:
    """``(examples, positions)``: of the training positions :func:`sft_examples` takes (``positions`` of them),
    those whose answer is among ``candidates`` of the *whole* history before it (the base sees all of it, as
    in RL; the prompt then shows the last ``max_history``), with those candidates (the first ``k`` of each
    row when given). Asked ``batch_size``
    histories at a time, so long sequences never hold every prefix at once."""
    kept: list[CandidateExample] = []
    pending: list[tuple[list[int], int]] = []
    positions = 0

    def flush() -> None:
        rows = torch.as_tensor(candidates([h for h, _ in pending])).long().cpu().tolist()
        if len(rows) != len(pending):
            raise DataError(f"the candidate source returned {len(rows)} rows for {len(pending)} histories")
        for (h, a), row in zip(pending, rows):
            row = row[:k] if k else row
            if a in row:
                kept.append((h[-max_history:] if max_history else h, a, row))
        pending.clear()

    for s in dataset.train_histories():
        first = 1 if positions_per_user is None else max(1, len(s) - positions_per_user)
        for j in range(first, len(s)):
            pending.append((list(s[:j]), int(s[j])))
            positions += 1
            if len(pending) >= batch_size:
                flush()
    if pending:
        flush()
    return kept, positions


def build_sft_policy(config: SFTConfig):
    """A LoRA ``RecPolicy`` prompting as the RL trainer's (``policy_config``), with SFT's learning rate."""
    from rl4rec_core.policy.rec_policy import RecPolicy
    from rl4rec_core.policy.registry import policy_config

    # log-probs of the plain model (temperature 1); evaluating this checkpoint generates whole answers
    policy = dataclasses.replace(config.policy, lora=True, temperature=1.0,
                                 max_new_tokens=config.recipe.sft_max_answer_tokens)
    algorithm = AlgorithmSettings(learning_rate=config.recipe.sft_learning_rate)
    # with a base the candidates prompt (policy_config decides it, as for RL)
    return RecPolicy(policy_config(Settings(run=config.run, policy=policy, algorithm=algorithm, fusion=config.fusion)))


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

    def __init__(self, config: SFTConfig, policy, dataset, callbacks: Sequence[Any] = (),
                 candidates: CandidateSource | None = None):
        self.config, self.policy, self.dataset, self.callbacks = config, policy, dataset, list(callbacks)
        self.log = ckpt.TrainingLog(config.output_dir / ckpt.LOG_NAME)
        p = config.policy
        template = policy.config.policy.prompt_template or DEFAULT_PROMPT_TEMPLATE  # policy_config's choice
        shown = p.history_len or prompt_lib.get_template(template).history_len
        self.fused = config.fusion.base != "none"
        self.examples: list = []
        if self.fused:
            if candidates is None:
                raise ConfigError(f"SFT with --base {config.fusion.base} needs the base's candidates of each history "
                                  "(run_sft(..., candidates=...), e.g. the retrieval service's candidates)")
            k = config.fusion.num_candidates
            self.examples, self.positions = candidate_examples(
                dataset, candidates, config.recipe.sft_positions_per_user, max_history=shown, k=k)
            print(f"SFT: {len(self.examples):,} of {self.positions:,} training positions have their target among "
                  f"the {k} candidates", flush=True)
        else:
            self.examples = sft_examples(dataset, config.recipe.sft_positions_per_user, max_history=shown)
            self.positions = len(self.examples)
        if not self.examples and self.fused:
            raise DataError(f"no training position of {dataset.name!r} has its target among the base's "
                            f"{config.fusion.num_candidates} candidates; raise --num_candidates or check the base")
        if not self.examples:
            raise DataError(f"{dataset.name!r} has no training position to learn from: a user needs >= 4 items "
                            "(history, answer, validation, test); prepare a dataset with longer sequences")
        tok = policy.tokenizer
        if tok.eos_token_id is None:
            raise ConfigError(f"the tokenizer of {p.policy_model!r} has no EOS token to end answers with")
        self.titles, self.item_texts = dataset.item_titles, dataset.item_texts()
        # the answer: the item's text (what retrieval embeds), or with candidates its title (what the prompt shows)
        self.answer_texts = self.titles if self.fused else self.item_texts
        # every answer is one of num_items texts: tokenise each once, not once per example
        ids = tok(self.answer_texts, add_special_tokens=False)["input_ids"]
        self.answers = [(list(a) + [tok.eos_token_id])[: config.recipe.sft_max_answer_tokens] for a in ids]
        # logits_to_keep marks the HF models whose forward takes a cache; others run whole prompts
        self.share_prefix = "logits_to_keep" in inspect.signature(policy.model.get_base_model().forward).parameters
        self.step = 0

    def batches(self) -> Iterator[list[Example]]:
        """``batch_size`` examples at a time, endlessly; a fresh seeded shuffle each pass over the data."""
        rng, bs, pending = np.random.default_rng(self.config.run.seed), self.config.recipe.sft_batch_size, []
        while True:
            pending += [self.examples[i] for i in rng.permutation(len(self.examples))]
            while len(pending) >= bs:
                yield pending[:bs]
                pending = pending[bs:]

    def encode(self, batch: list[Example]) -> Rollout:
        """Examples -> a one-sample-per-prompt ``Rollout`` whose "sampled" ids are the answers ``[B]``."""
        histories = [[self.titles[i] for i in ex[0]] for ex in batch]
        shown = {"candidates": [[self.titles[i] for i in ex[2]] for ex in batch]} if self.fused else {}
        prompts = self.policy.build_prompts(histories, **shown)
        # the policy's own encoding: the very ids (and truncation) its sampler continues
        ids = self.policy._encode_prompts(prompts)
        answers = [ex[1] for ex in batch]
        return Rollout(prompts, [self.answer_texts[a] for a in answers], ids, [self.answers[a] for a in answers], 1)

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
        t0, policy, mb = time.perf_counter(), self.policy, self.config.policy.micro_batch_size
        rollout = self.encode(batch)
        n_tokens, total = sum(rollout.gen_lengths), 0.0
        policy.optimizer.zero_grad(set_to_none=True)
        for s in range(0, len(batch), mb):
            logp, mask = self.answer_logprobs(rollout, list(range(s, min(s + mb, len(batch)))))
            nll = -(logp * mask).sum()
            (nll / n_tokens).backward()  # the whole batch's token count: micro-batching keeps the gradient
            total += float(nll.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(),
                                                   self.config.policy.max_grad_norm or float("inf"))
        policy.optimizer.step()
        policy.num_updates += 1
        self.step += 1
        return {"step": self.step - 1, "loss": total / n_tokens, "tokens": n_tokens, "grad_norm": float(grad_norm),
                "time": time.perf_counter() - t0}

    def train(self) -> dict[str, Any]:
        """Run ``num_steps`` steps, then write ``checkpoint_final``; returns a summary. The run folder's lock
        (``run_lock.py``) is held throughout, as ``rl4rec train`` holds it: a second writer is refused."""
        with RunLock(self.config.output_dir):
            return self._train()

    def _train(self) -> dict[str, Any]:
        cfg, t0 = self.config, time.perf_counter()
        steps = cfg.recipe.sft_steps
        prepare_output(cfg)
        self._emit("on_train_start", self)
        with tqdm(total=steps, desc="sft", unit="step", disable=not bars_wanted(cfg.progress)) as bar:
            for batch in self.batches():
                if self.step >= steps:
                    break
                stats = self.train_step(batch)
                self.log.append(stats)
                if stats["step"] % cfg.trainer.log_every == 0 or self.step == steps:
                    tqdm.write(f"SFT step {stats['step']} | loss {stats['loss']:.4f}")  # above the bar
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                bar.update(1)
                self._emit("on_step_end", stats["step"], stats)
        final, losses = self.save(cfg.output_dir / ckpt.FINAL_NAME), [r["loss"] for r in self.log.read()]
        summary = {"steps": self.step, "examples": len(self.examples), "positions": self.positions, "first_loss": float(np.mean(losses[:10])),
                   "last_loss": float(np.mean(losses[-10:])), "final_checkpoint": str(final),
                   "training_log": str(self.log.path), "seconds": time.perf_counter() - t0}
        self._emit("on_train_end", summary)
        return summary

    def save(self, path: Path) -> Path:
        state = {"step": self.step, "kind": "sft", "rng": ckpt.capture_rng()}
        # policy.policy / stage tell load_policy (and readers of config.json) what this checkpoint holds
        # a full disk, the file-size limit, a read-only folder: one line
        with saving_into(path.parent, f"write checkpoint {path.name}"):
            ckpt.save_checkpoint(path, self.policy, state, {**self.config.to_dict(), "stage": "sft"})
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
    if old and not config.trainer.overwrite:
        raise ConfigError(f"{out} already holds a training run; pass --overwrite to delete it and start over, "
                          "or another --checkpoint_dir")
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()  # checkpoint folders, then the log


def run_sft(config: SFTConfig, dataset=None, callbacks: Sequence[Any] = (),
            candidates: CandidateSource | None = None) -> dict[str, Any]:
    """Load the dataset (unless given) and the policy, train, save; returns :meth:`SFTTrainer.train`'s summary.
    The run folder's lock is taken first: another writer is refused, and nothing there is cleared, before
    the model loads. ``candidates``: with ``fusion.base`` set, histories -> the base's top-K ``[B, K]``."""
    if config.fusion.base != "none" and candidates is None:  # before the lock and the model load: a missing
        from rl4rec_core.retrieval.base_channel import base_candidates  # base is one line, not a late failure

        candidates = base_candidates(config.fusion, config.run.dataset_name)
    with RunLock(config.output_dir):
        prepare_output(config)  # refuse (or clear) before the model is loaded
        dataset = load_dataset(config.run.dataset_name) if dataset is None else dataset
        return SFTTrainer(config, build_sft_policy(config), dataset, callbacks, candidates)._train()
