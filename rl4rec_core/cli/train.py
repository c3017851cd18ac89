"""``rl4rec train``: the original's ``rl_train.py``; its flags are the fields of ``rl4rec_core/settings.py``."""

from __future__ import annotations

import argparse
import dataclasses
import logging

log = logging.getLogger(__name__)

# how this process reaches the service and draws its console: not settings of the run, so the flows
# (which place work with Ray and log to MLflow) have no such parameters
CLI_ONLY_FLAGS = ("service", "address", "no_progress")


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags

    p = subparsers.add_parser(
        "train",
        help="RL-train a policy against the retrieval service's rewards",
        description=(
            "Sample users, generate texts with the policy, score them with the retrieval service and "
            "update the policy (GRPO or REINFORCE). Writes training_log.jsonl and checkpoints under "
            "--checkpoint_dir. The defaults are the recipe of docs/recipe.md."
        ),
    )
    add_settings_flags(p)
    p.add_argument("--service", choices=("auto", "local", "ray"), default="auto",
                   help="ray: attach to the running RetrievalService actor; local: build it in-process; "
                   "auto: ray if found (default: %(default)s)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _warn_unused_llm_flags(settings) -> None:
    from rl4rec_core.settings import PolicySettings

    if not settings.policy.use_dummy:
        return
    defaults = PolicySettings(policy="dummy")
    changed = [f.name for f in dataclasses.fields(PolicySettings)
               if f.name != "policy" and getattr(settings.policy, f.name) != getattr(defaults, f.name)]
    if changed:
        log.warning("--use_dummy ignores %s", ", ".join(f"--{k}" for k in changed))


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import settings_from_args
    from rl4rec_core.data import load_dataset, prepare_dataset
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.training.trainer import build_trainer

    settings = settings_from_args(args)
    _warn_unused_llm_flags(settings)
    run_settings = settings.run
    if run_settings.source:
        prepare_dataset(run_settings.dataset_name, run_settings.source, fmt=run_settings.fmt,
                        encoding=run_settings.encoding)
    dataset = load_dataset(run_settings.dataset_name)
    source, description = connect_reward_source(
        run_settings.dataset_name, settings.retrieval, mode=args.service, address=args.address,
        device=run_settings.device,
    )
    print(description)
    trainer = build_trainer(settings, source, dataset, progress=not args.no_progress)
    kind = "DummyRecPolicy" if settings.policy.use_dummy else settings.policy.policy_model
    print(f"Policy: {kind}; output: {settings.output_dir}")
    summary = trainer.train()
    print(
        f"✓ Training done: {summary['steps']} steps; avg reward {summary['first_avg_reward']:.4f} (first step) -> "
        f"{summary['last_avg_reward']:.4f} (last step); log: {summary['training_log']}"
    )
    return 0
