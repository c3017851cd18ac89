"""RecPolicy: a causal LM that turns a user's history into a text describing the next item, trained by
policy gradient (GRPO / REINFORCE, optional KL and PPO clip; see ``rl4rec_core.policy.algorithms``).

Usage as in the original (the settings' defaults, with the named fields changed)::

    policy = RecPolicy(PolicyConfig.from_fields(policy_model="gpt2"))
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

This module holds the policy's construction and sampling; the rest is split by concern:
``config`` (``PolicyConfig``), ``model_loading`` (model, tokenizer, LoRA), ``learning`` (the update
step) and ``checkpoint`` (save / load).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging

import torch

from rl4rec_core.devices import cpu_has_fast_bf16, resolve_device
from rl4rec_core.errors import ConfigError
from rl4rec_core.policy import prompts as prompt_lib
from rl4rec_core.policy.algorithms import RunningBaseline
from rl4rec_core.policy.checkpoint import PolicyCheckpoints
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.constrained import allowed_per_position, build_trie
from rl4rec_core.policy.engines import RolloutEngine, make_engine
from rl4rec_core.policy.learning import PolicyLearning
from rl4rec_core.policy.model_loading import eos_token_ids, load_model
from rl4rec_core.policy.rollout import Rollout
from rl4rec_core.policy.warm_start import check_start
from rl4rec_core.settings import DEFAULT_PROMPT_TEMPLATE

log = logging.getLogger(__name__)


class RecPolicy(PolicyLearning, PolicyCheckpoints):
    """LLM recommendation policy, built from a ``PolicyConfig`` (the run's policy and algorithm settings)."""

    def __init__(self, config: PolicyConfig):
        if not isinstance(config, PolicyConfig):
            raise ConfigError("RecPolicy takes a PolicyConfig, e.g. PolicyConfig.from_fields(policy_model=...)")
        cfg = config.policy
        if cfg.policy != "llm":
            raise ConfigError(f"RecPolicy is the llm policy, got policy={cfg.policy!r}; build the dummy with "
                              "DummyRecPolicy or rl4rec_core.policy.registry.build_policy")
        prompt_lib.get_template(cfg.prompt_template or DEFAULT_PROMPT_TEMPLATE)  # names the known templates
        if cfg.init_from:  # fail before any model load, with the fix; the resolved folder is what is saved
            config = config.replace(init_from=str(check_start(cfg.init_from, cfg.policy_model)))
        self.config = config
        cfg = config.policy
        self.device = resolve_device(config.device)
        self.model, self.tokenizer = load_model(config, self.device)
        self._eos_ids = eos_token_ids(self.model, self.tokenizer)
        self._chat = prompt_lib.has_chat_template(self.tokenizer) if cfg.use_chat_template is None else cfg.use_chat_template
        base = self.model.get_base_model() if cfg.lora else self.model
        self._keep_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        # full fine-tuning has no adapters to switch off, so a KL reference needs its own frozen copy
        self._ref_model = None
        if config.algorithm.kl_coef > 0 and not cfg.lora:
            self._ref_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.trainable_parameters(), lr=config.learning_rate, weight_decay=cfg.weight_decay
        )
        self.baseline = RunningBaseline(config.algorithm.baseline_momentum)
        self.num_updates = 0
        # set by the data-parallel trainer: averages the gradients of every worker before each step
        self.grad_sync = None
        self.last_rollout: Rollout | None = None
        self._engine: RolloutEngine | None = None
        self._cpu_bf16 = cfg.cpu_bf16 and self.device.type == "cpu" and cpu_has_fast_bf16()
        if cfg.cpu_bf16 and not self._cpu_bf16:
            log.warning("cpu_bf16 ignored: it needs a CPU with AMX (this device: %s; without AMX bf16 was measured "
                        "slower)", self.device)
        # no dropout anywhere: the log-probs used for the gradient must be those of the sampler
        self.model.eval()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ prompts and sampling
    def build_prompts(self, user_histories: list[list[str]], candidates: list[list[str]] | None = None) -> list[str]:
        """Histories (item texts, oldest first) -> prompt texts (chat-formatted when the model has a template);
        ``candidates``: each user's base top-K titles, for the ``candidates`` template (``policy_config`` picks it
        when ``fusion.base`` is set)."""
        cfg = self.config.policy
        return prompt_lib.build_prompts(
            user_histories, self.tokenizer, cfg.prompt_template or DEFAULT_PROMPT_TEMPLATE, cfg.history_len,
            cfg.item_noun or "item", self._chat, cfg.system_prompt, cfg.response_prefix or "", candidates=candidates,
        )

    def _encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        # a chat template already wrote any BOS into the text; adding special tokens would double it
        enc = self.tokenizer(
            list(prompts), add_special_tokens=not self._chat, truncation=True, max_length=self.config.policy.max_prompt_tokens
        )
        return [list(ids) for ids in enc["input_ids"]]

    @torch.no_grad()
    def rollout(self, prompts: list[str], num_samples: int = 1, greedy: bool = False,
                seeds: list[int] | None = None, candidates: list[list[str]] | None = None) -> Rollout:
        """Sample ``num_samples`` completions per prompt; see :class:`Rollout` for the layout.

        ``seeds`` (one per prompt) make each prompt's samples depend on its seed alone, not on the rest of
        the batch (``keyed_sampling.py``): what data-parallel training needs to repeat across worker counts.
        ``candidates`` (titles, one list per prompt): constrained decoding, each sample one of its prompt's
        titles (``constrained.py``; the update then scores the same renormalised distribution).
        """
        if isinstance(prompts, str):
            raise ConfigError("prompts must be a list of strings (use build_prompts), not a single string")
        if num_samples < 1:
            raise ConfigError(f"num_samples must be ≥ 1, got {num_samples}")
        if seeds is not None and len(seeds) != len(prompts):
            raise ConfigError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one seed per prompt")
        prompt_ids = self._encode_prompts(prompts)
        tries = None if candidates is None else self._candidate_tries(candidates, len(prompts))
        with self.autocast():
            completions = self.engine.sample(prompt_ids, num_samples, greedy, seeds=seeds,
                                             **({} if tries is None else {"tries": tries}))
        texts = [self.tokenizer.decode(c, skip_special_tokens=True).strip() for c in completions]
        allowed = None if tries is None else [
            allowed_per_position(tries[i // num_samples], c) for i, c in enumerate(completions)]
        self.last_rollout = Rollout(list(prompts), texts, prompt_ids, completions, num_samples, allowed)
        return self.last_rollout

    def _candidate_tries(self, candidates: list[list[str]], num_prompts: int) -> list:
        """One trie per prompt over its candidates' title tokens (+ EOS); the checks constrained decoding needs."""
        cfg = self.config.policy
        if cfg.rollout_engine != "hf":
            raise ConfigError(f"constrained decoding (--constrained) needs --rollout_engine hf, not {cfg.rollout_engine!r}")
        if cfg.top_k or cfg.top_p < 1.0:
            raise ConfigError("constrained decoding (--constrained) samples among the candidates' tokens; drop "
                              "--top_k / --top_p")
        if len(candidates) != num_prompts or any(not c for c in candidates):
            raise ConfigError(f"constrained decoding needs a non-empty candidate list per prompt, got "
                              f"{len(candidates)} lists for {num_prompts} prompts")
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(f"the tokenizer of {cfg.policy_model!r} has no EOS token to end a candidate's title")
        ids = self.tokenizer(sorted({t for c in candidates for t in c}), add_special_tokens=False)["input_ids"]
        tokens = dict(zip(sorted({t for c in candidates for t in c}), ids))
        return [build_trie([tokens[t] for t in c], eos) for c in candidates]

    def autocast(self):
        """bf16 autocast for the CPU's matmuls when ``policy.cpu_bf16`` and the CPU has AMX; a no-op otherwise.
        Sampling and the update both run under it, so the log-probs come from the same arithmetic as the samples."""
        if self._cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def engine(self) -> RolloutEngine:
        """The rollout engine (``policy.rollout_engine``), started on first use: vLLM's takes a while."""
        if self._engine is None:
            self._engine = make_engine(self.config.policy.rollout_engine, self)
        return self._engine

    def weights_changed(self) -> None:
        """Tell the rollout engine the weights moved (after an update or a load)."""
        if self._engine is not None:
            self._engine.sync()

    def close(self) -> None:
        """Free the rollout engine (vLLM's holds a process and memory)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    @property
    def _shares_prompt(self) -> bool:
        # logits_to_keep marks the HF models whose forward takes the cache arguments prefill relies on
        return self.config.policy.share_prompt and self._keep_logits

    def generate(self, prompts: list[str], num_samples: int = 1, greedy: bool = False,
                 seeds: list[int] | None = None, candidates: list[list[str]] | None = None) -> list[str]:
        """Texts ``[len(prompts) * num_samples]``, prompt i's samples at ``i*num_samples:(i+1)*num_samples``;
        with ``candidates`` (titles per prompt) each text is one of them (constrained decoding).

        The token ids stay in ``self.last_rollout`` for :meth:`update`.
        """
        return self.rollout(prompts, num_samples, greedy, seeds, candidates).texts


__all__ = ["RecPolicy", "PolicyConfig"]
