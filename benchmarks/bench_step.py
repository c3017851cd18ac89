"""Where one training step's time goes, against the bare references measured in the same run.

    rl4rec data prepare --dataset ml-100k && rl4rec embed --dataset ml-100k && rl4rec assets fetch
    python benchmarks/bench_step.py                      # CPU: 32 samples x 12 tokens (8 users x 4)
    python benchmarks/bench_step.py --device cuda        # GPU: 128 x 12 (32 users x 4), bf16
    python benchmarks/bench_step.py --variants           # also each speed-up switched off, one at a time

A step is the real ``RLTrainer.train_step`` of the recipe (SmolLM2-135M-Instruct, LoRA r 16, GRPO with
the KL reference, ``log_rank`` reward from an in-process ``RetrievalService`` on MovieLens-100k) with
every sample running to the full token budget (``min_new_tokens``), so token counts are fixed. The
references use the same prompts and lengths:

* **plain generate**: ``model.generate(num_return_sequences=G)`` of a plain transformers model (no LoRA,
  no shared prompt, transformers' own attention) — what a straightforward sampler costs;
* **one forward+backward**: log-probs of the step's completions through the policy's model, then
  ``.backward()``, twice: on the padded ``[N, prompt + completion]`` batch, each sequence with its own
  copy of the prompt (what a straightforward trainer runs), and with each prompt run once for its
  group (the least an exact update must run; ours also runs the KL reference pass).

Each figure is the median over ``--steps`` measured steps after ``--warmup`` (the first steps pay
allocation and cache warm-up). Not a test: figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from rl4rec_core.devices import cpu_has_fast_bf16
from rl4rec_core.progress import quiet_when_piped
from rl4rec_core.settings import (AlgorithmSettings, PolicySettings, RetrievalSettings, RunSettings, Settings,
                                  TrainerSettings)

PHASES = ("time_generate", "time_reward", "time_update", "time_step")
# the speed-ups of issue 10 that can be switched off, each measured alone with --variants
VARIANTS = {
    "no shared prompt": {"share_prompt": False},
    "LoRA not merged for sampling": {"merge_for_sampling": False},
    "transformers' sdpa (K/V repeated)": {"attention": "sdpa"},
    "both (the step before issue 10)": {"merge_for_sampling": False, "attention": "sdpa"},
}


def build(args, overrides: dict):
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.training.trainer import build_trainer

    settings = Settings(
        run=RunSettings(dataset_name=args.dataset, device=args.device, seed=0),
        retrieval=RetrievalSettings(),
        policy=PolicySettings(max_new_tokens=args.new_tokens, micro_batch_size=args.micro_batch_size,
                              dtype=args.dtype, rollout_engine=args.rollout_engine),
        algorithm=AlgorithmSettings(group_size=args.group_size),
        trainer=TrainerSettings(num_steps=1, batch_size=args.batch_size, checkpoint_dir="/tmp/rl4rec_bench_step",
                                overwrite=True),
    )
    source, _ = connect_reward_source(args.dataset, settings.retrieval, mode="local", device=args.device)
    trainer = build_trainer(settings, source, progress=False)
    policy = trainer.policy
    policy.model.generation_config.min_new_tokens = args.new_tokens  # fixed lengths: like-for-like tokens/s
    for name, value in overrides.items():
        if name == "attention":
            policy.model.set_attn_implementation(value)
        elif name == "cpu_bf16":
            policy._cpu_bf16 = value
        else:
            policy.config = policy.config.replace(**{name: value})
    return trainer


def time_steps(trainer, warmup: int, steps: int) -> dict[str, float]:
    rows = [trainer.train_step() for _ in range(warmup + steps)][warmup:]
    out = {k: statistics.median(r[k] for r in rows) for k in PHASES}
    out["tokens"] = statistics.median(r["gen_tokens"] * r["num_sequences"] for r in rows)
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_generate_seconds(args, trainer, prompts: list[str], repeats: int) -> float:
    """Best-of time of a plain transformers model sampling the same prompts to the same lengths."""
    from transformers import AutoModelForCausalLM

    from rl4rec_core.assets.models import resolve_policy_model
    from rl4rec_core.policy.model_loading import resolve_dtype

    policy = trainer.policy
    dtype = resolve_dtype(args.dtype, policy.device)
    plain = AutoModelForCausalLM.from_pretrained(resolve_policy_model(policy.config.model_name), dtype=dtype)
    plain = plain.to(policy.device).eval()
    tok = policy.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(policy.device)
    best = float("inf")
    for _ in range(repeats):
        sync(args.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            plain.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                           num_return_sequences=args.group_size, max_new_tokens=args.new_tokens,
                           min_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id)
        sync(args.device)
        best = min(best, time.perf_counter() - t0)
    return best


def forward_backward_seconds(args, trainer, repeats: int, shared: bool) -> float:
    """Best-of time of one forward+backward of the last rollout's tokens through the policy's model."""
    from rl4rec_core.policy.rollout import completion_logprobs, pack
    from rl4rec_core.policy.shared_prefix import grouped_completion_logprobs, pack_groups

    policy = trainer.policy
    rollout = policy.last_rollout
    pad = policy.tokenizer.pad_token_id
    if shared:
        batch = pack_groups(rollout, list(range(len(rollout.prompts))), pad, policy.device)
        run = lambda: grouped_completion_logprobs(policy.model, batch)  # noqa: E731
    else:
        batch = pack(rollout, list(range(len(rollout))), pad, policy.device)
        run = lambda: completion_logprobs(policy.model, batch)  # noqa: E731
    best = float("inf")
    for _ in range(repeats):
        sync(args.device)
        t0 = time.perf_counter()
        run().sum().backward()
        sync(args.device)
        best = min(best, time.perf_counter() - t0)
        policy.optimizer.zero_grad(set_to_none=True)
    return best


def report(label: str, t: dict[str, float], gen_ref: float, fb_refs: tuple[float, float], tokens: float) -> None:
    print(f"\n{label}")
    print(f"  {'phase':<10} {'seconds':>8} {'share':>6}   vs reference")
    print(f"  {'generate':<10} {t['time_generate']:8.2f} {t['time_generate'] / t['time_step']:6.0%}   "
          f"{t['tokens'] / t['time_generate']:.1f} tok/s = {gen_ref / t['time_generate']:.2f}x plain generate "
          f"({tokens / gen_ref:.1f} tok/s)")
    print(f"  {'reward':<10} {t['time_reward']:8.2f} {t['time_reward'] / t['time_step']:6.0%}")
    print(f"  {'update':<10} {t['time_update']:8.2f} {t['time_update'] / t['time_step']:6.0%}   "
          f"{t['time_update'] / fb_refs[0]:.2f}x one forward+backward, prompt per sequence ({fb_refs[0]:.2f} s); "
          f"{t['time_update'] / fb_refs[1]:.2f}x with each prompt once ({fb_refs[1]:.2f} s)")
    print(f"  {'step':<10} {t['time_step']:8.2f}")


def main() -> None:
    quiet_when_piped()  # bars ("Loading weights", encoders) only on a terminal, never in a saved log
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--batch_size", type=int, default=None, help="samples per step (default: 32 CPU, 128 GPU)")
    ap.add_argument("--group_size", type=int, default=4)
    ap.add_argument("--new_tokens", type=int, default=12)
    ap.add_argument("--micro_batch_size", type=int, default=None, help="default: 16 CPU, 128 GPU")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--rollout_engine", default="hf", choices=("hf", "vllm"))
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--variants", action="store_true", help="also time each speed-up switched off")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    args.batch_size = args.batch_size or (128 if gpu else 32)
    args.micro_batch_size = args.micro_batch_size or (128 if gpu else 16)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if gpu else (platform.processor() or platform.machine())
    print(f"machine: {name}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"CPU bf16 (AMX): {'yes' if cpu_has_fast_bf16() else 'no'}")
    print(f"config: {args.batch_size} samples = {args.batch_size // args.group_size} users x {args.group_size}, "
          f"{args.new_tokens} new tokens, micro-batch {args.micro_batch_size}, dtype {args.dtype}, "
          f"rollout engine {args.rollout_engine}")
    trainer = build(args, {})
    timed = time_steps(trainer, args.warmup, args.steps)
    users = trainer.sample_users()
    prompts = trainer.policy.build_prompts([[trainer.titles[i] for i in trainer.histories[u]] for u in users])
    prompt_tokens = sum(len(p) for p in trainer.policy._encode_prompts(prompts)) / len(prompts)
    print(f"prompts: {prompt_tokens:.0f} tokens on average")
    gen_ref = plain_generate_seconds(args, trainer, prompts, repeats=2)
    fb_refs = (forward_backward_seconds(args, trainer, 1, shared=False), forward_backward_seconds(args, trainer, 2, True))
    tokens = args.batch_size * args.new_tokens
    report("rl4rec step (all speed-ups on)", timed, gen_ref, fb_refs, tokens)
    if args.variants and not gpu and cpu_has_fast_bf16():  # opt-in until measured: see docs/performance.md
        report("with: cpu_bf16 (bf16 autocast)", time_steps(build(args, {"cpu_bf16": True}), args.warmup, args.steps),
               gen_ref, fb_refs, tokens)
    if args.variants:
        for label, overrides in VARIANTS.items():
            report(f"without: {label}", time_steps(build(args, overrides), args.warmup, args.steps),
                   gen_ref, fb_refs, tokens)


if __name__ == "__main__":
    main()
