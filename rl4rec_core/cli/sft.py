"""``rl4rec sft``: supervised fine-tuning (LoRA) on next-item texts of training positions, before RL."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sft",
        help="supervised fine-tuning of the policy on next-item texts (a starting point for RL)",
        description=(
            "Teach the policy to answer a user's history with the next item's text (the text the retrieval "
            "service embeds), from training positions only (validation and test items are never seen). "
            "Writes training_log.jsonl and checkpoint_final under --checkpoint_dir; start RL from it with "
            "`rl4rec train --init_from <checkpoint_dir>/checkpoint_final`."
        ),
    )
    a = p.add_argument
    a("--dataset_name", default="ml-100k", help="prepared dataset (default: %(default)s)")
    a("--policy_model", default="smollm2-135m-instruct", help="alias, HF name or local folder (default: %(default)s)")
    a("--num_steps", type=int, default=200, help="optimizer steps (default: %(default)s)")
    a("--batch_size", type=int, default=8, help="examples (user positions) per step (default: %(default)s)")
    a("--micro_batch_size", type=int, default=8, help="examples per forward/backward, bounds memory (default: 8)")
    a("--learning_rate", type=float, default=5e-4, help="LoRA learning rate (default: %(default)s)")
    a("--lora_r", type=int, default=16, help="LoRA rank (default: %(default)s)")
    a("--history_len", type=int, default=None, help="last N history items in the prompt (default: the template's)")
    a("--prompt_template", default="next_item",
      help="next_item (default), compelling, plain, or a format string with {history}; use the RL run's")
    a("--response_prefix", default="", help="start of the answer; use the RL run's (default: none)")
    a("--max_answer_tokens", type=int, default=48, help="answer tokens learnt, EOS included (default: %(default)s)")
    a("--positions_per_user", type=int, default=None,
      help="each user's K most recent training positions (default: all of them)")
    a("--checkpoint_dir", default=None, help="default: checkpoints/{dataset_name}_sft")
    a("--overwrite", action="store_true", help="delete an existing run in --checkpoint_dir and start over")
    a("--log_every", type=int, default=10, help="console line every N steps (default: %(default)s)")
    a("--seed", type=int, default=0, help="example order and LoRA initialisation (default: %(default)s)")
    a("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    a("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.common import config_from_args
    from rl4rec_core.training.sft import SFTConfig, run_sft

    cfg = config_from_args(SFTConfig, args, progress=not args.no_progress)
    print(f"SFT of {cfg.policy_model} on {cfg.dataset_name}; output: {cfg.output_dir}")
    s = run_sft(cfg)
    print(
        f"✓ SFT done: {s['steps']} steps over {s['examples']:,} training positions in {s['seconds']:.0f} s; "
        f"loss {s['first_loss']:.4f} (first 10 steps) -> {s['last_loss']:.4f} (last 10); log: {s['training_log']}\n"
        f"Checkpoint: {s['final_checkpoint']}\n"
        f"Start RL from it:  rl4rec train --init_from {s['final_checkpoint']}"
    )
    return 0
