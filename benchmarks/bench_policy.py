"""RecPolicy throughput on a real model: sampling tokens/s against plain ``model.generate``, and the time
of one policy-gradient update, with each GRPO group's prompt run once (``share_prompt``, the default) and
once per sample.

    rl4rec assets fetch
    python benchmarks/bench_policy.py [--model smollm2-135m-instruct] [--prompts 8] [--group_size 4] [--new_tokens 20]

Both generators get the same chat-formatted prompts (real MovieLens titles), the same sampling
settings and ``min_new_tokens = max_new_tokens``, so every sequence produces exactly ``--new_tokens``
tokens and tokens/s compare like for like. RecPolicy runs through its LoRA wrapper (adapters
unmerged, as during training). Each measurement is the best of ``--repeats`` runs (least disturbed
by other processes on a shared machine). Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from rl4rec_core.progress import quiet_when_piped
from rl4rec_core.settings import DEFAULT_POLICY_MODEL

HISTORIES = [
    ["Toy Story (1995). Genres: Animation, Children's, Comedy", "Twelve Monkeys (1995). Genres: Drama, Sci-Fi",
     "Babe (1995). Genres: Children's, Comedy, Drama", "Dead Man Walking (1995). Genres: Drama"],
    ["Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War", "Fargo (1996). Genres: Crime, Drama, Thriller",
     "Return of the Jedi (1983). Genres: Action, Adventure, Romance, Sci-Fi, War"],
    ["Scream (1996). Genres: Horror, Thriller", "Liar Liar (1997). Genres: Comedy",
     "Air Force One (1997). Genres: Action, Thriller", "Contact (1997). Genres: Drama, Sci-Fi"],
    ["Pulp Fiction (1994). Genres: Crime, Drama", "Fargo (1996). Genres: Crime, Drama, Thriller",
     "The Godfather (1972). Genres: Action, Crime, Drama", "Casablanca (1942). Genres: Drama, Romance, War"],
]


def best_of(repeats: int, fn) -> tuple[float, object]:
    runs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return min(runs), out


def main() -> None:
    quiet_when_piped()  # bars ("Loading weights", encoders) only on a terminal, never in a saved log
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_POLICY_MODEL)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group_size", type=int, default=4, help="samples per prompt (GRPO's G)")
    ap.add_argument("--new_tokens", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM

    from rl4rec_core.assets.models import resolve_policy_model
    from rl4rec_core.policy.config import PolicyConfig
    from rl4rec_core.policy.rec_policy import RecPolicy

    n, g, t = args.prompts, args.group_size, args.new_tokens
    policy = RecPolicy(PolicyConfig.from_fields(
        policy_model=args.model, max_new_tokens=t, micro_batch_size=16, generation_batch_size=n * g, learning_rate=1e-4,
        item_noun="movie", group_size=g, kl_coef=0.0))
    # every sample runs to the token budget, so both sides generate exactly n × t tokens
    policy.model.generation_config.min_new_tokens = t
    histories = [HISTORIES[i % len(HISTORIES)] for i in range(n)]
    prompts = policy.build_prompts(histories)

    plain = AutoModelForCausalLM.from_pretrained(resolve_policy_model(args.model), dtype=torch.float32).eval()
    tok = policy.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    def plain_generate():
        with torch.no_grad():
            return plain.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, num_return_sequences=g,
                                  max_new_tokens=t, min_new_tokens=t, pad_token_id=tok.pad_token_id)

    def sample():
        return policy.generate(prompts, num_samples=g)

    shared_s, texts = best_of(args.repeats, sample)
    produced = sum(policy.last_rollout.gen_lengths)
    rollout = policy.last_rollout
    print(f"RecPolicy.generate (shared prompt) done: {shared_s:.2f} s", flush=True)
    policy.config = policy.config.replace(share_prompt=False)
    unshared_s, _ = best_of(args.repeats, sample)
    print(f"RecPolicy.generate (prompt per sample) done: {unshared_s:.2f} s", flush=True)
    plain_s, _ = best_of(args.repeats, plain_generate)
    print(f"plain generate done: {plain_s:.2f} s", flush=True)
    rewards = torch.rand(len(texts))
    updates = {}
    for share in (True, False):
        policy.config = policy.config.replace(share_prompt=share)
        policy.last_rollout = rollout
        updates[share] = best_of(args.repeats, lambda: policy.update(prompts, texts, rewards))

    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"model: {args.model}; {n} prompts x {g} samples x {t} new tokens "
          f"(prompt length ~{enc['input_ids'].shape[1]} tokens)")
    print(f"RecPolicy.generate, shared prompt:     {shared_s:6.2f} s  {produced / shared_s:6.1f} tok/s")
    print(f"RecPolicy.generate, prompt per sample: {unshared_s:6.2f} s  {produced / unshared_s:6.1f} tok/s")
    print(f"plain model.generate (no LoRA):        {plain_s:6.2f} s  {n * g * t / plain_s:6.1f} tok/s")
    # each update moves the weights, so the two rows' losses differ; tests/policy/test_shared_prefix.py shows
    # that on the same weights both paths give the same loss and gradients
    for share, (upd_s, _) in updates.items():
        print(f"update on {len(texts)} samples, {'shared prompt    ' if share else 'prompt per sample'}: {upd_s:6.2f} s")
    print("sample:", texts[0][:200])


if __name__ == "__main__":
    main()
