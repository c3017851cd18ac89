"""``rl4rec sft``: supervised fine-tuning (LoRA) on next-item texts of training positions, before RL.

Its flags are the fields of ``SFTConfig`` (``training/sft.py``), generated like ``rl4rec train``'s.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_group_flags
    from rl4rec_core.training.sft import SFTConfig

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
    add_group_flags(p, SFTConfig, "sft")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import group_from_args
    from rl4rec_core.training.sft import SFTConfig, run_sft

    cfg = group_from_args(SFTConfig, args)
    print(f"SFT of {cfg.policy_model} on {cfg.dataset_name}; output: {cfg.output_dir}")
    s = run_sft(cfg)
    print(
        f"✓ SFT done: {s['steps']} steps over {s['examples']:,} training positions in {s['seconds']:.0f} s; "
        f"loss {s['first_loss']:.4f} (first 10 steps) -> {s['last_loss']:.4f} (last 10); log: {s['training_log']}\n"
        f"Checkpoint: {s['final_checkpoint']}\n"
        f"Start RL from it:  rl4rec train --init_from {s['final_checkpoint']}"
    )
    return 0
