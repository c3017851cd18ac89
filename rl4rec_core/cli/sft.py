"""``rl4rec sft``: supervised fine-tuning (LoRA) on next-item texts of training positions, before RL.

Its flags are settings fields, as every command's: the dataset, seed and device, the policy's model and
prompt (the RL run's, so SFT learns the very prompt RL will use), the recipe's ``sft_*`` fields and the
output folder.
"""

from __future__ import annotations

import argparse

SETTINGS = {
    "run": ("dataset_name", "seed", "device"),
    "policy": ("policy_model", "lora_r", "lora_alpha", "lora_target_modules", "history_len", "prompt_template",
               "response_prefix", "item_noun", "system_prompt", "use_chat_template", "max_prompt_tokens",
               "micro_batch_size", "max_grad_norm", "weight_decay", "dtype", "cpu_bf16"),
    "recipe": ("sft_steps", "sft_batch_size", "sft_learning_rate", "sft_max_answer_tokens", "sft_positions_per_user"),
    "trainer": ("checkpoint_dir", "overwrite", "log_every"),
    # with a base: the candidates prompt, and examples whose target is among the base's top-K
    "fusion": ("base", "num_candidates"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags

    p = subparsers.add_parser(
        "sft",
        help="supervised fine-tuning of the policy on next-item texts (a starting point for RL)",
        description=(
            "Teach the policy to answer a user's history with the next item's text (the text the retrieval "
            "service embeds), from training positions only (validation and test items are never seen). "
            "Writes training_log.jsonl and checkpoint_final under --checkpoint_dir (default "
            "checkpoints/{dataset_name}_sft); start RL from it with "
            "`rl4rec train --init_from <checkpoint_dir>/checkpoint_final`."
        ),
    )
    add_settings_flags(p, SETTINGS)
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def sft_config(args: argparse.Namespace):
    """The ``SFTConfig`` of these flags."""
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.training.sft import SFTConfig

    return SFTConfig(**groups_from_args(args, SETTINGS), progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.training.sft import run_sft

    cfg = sft_config(args)
    print(f"SFT of {cfg.policy.policy_model} on {cfg.run.dataset_name}; output: {cfg.output_dir}")
    s = run_sft(cfg)
    print(
        f"✓ SFT done: {s['steps']} steps over {s['examples']:,} training positions in {s['seconds']:.0f} s; "
        f"loss {s['first_loss']:.4f} (first 10 steps) -> {s['last_loss']:.4f} (last 10); log: {s['training_log']}\n"
        f"Checkpoint: {s['final_checkpoint']}\n"
        f"Start RL from it:  rl4rec train --init_from {s['final_checkpoint']}"
    )
    return 0
