"""``rl4rec train``: the original's ``rl_train.py``; its flags are the fields of a training run's settings."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from rl4rec_core.settings import GROUPS

log = logging.getLogger(__name__)

# every field of a training run's groups (run, retrieval, policy, algorithm, trainer)
SETTINGS = dict.fromkeys(GROUPS)
# how this process reaches the service and draws its console: not settings of the run, so the flows
# (which place work with Ray and log to MLflow) have no such parameters
CLI_ONLY_FLAGS = ("service", "address", "no_progress")


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags
    from rl4rec_core.settings import SERVICE_MODES

    p = subparsers.add_parser(
        "train",
        help="RL-train a policy against the retrieval service's rewards",
        description=(
            "Sample users, generate texts with the policy, score them with the retrieval service and "
            "update the policy (GRPO or REINFORCE). Writes training_log.jsonl and checkpoints under "
            "--checkpoint_dir. The defaults are the recipe of docs/recipe.md."
        ),
    )
    add_settings_flags(p, SETTINGS)
    p.add_argument("--service", choices=SERVICE_MODES, default="auto",
                   help="ray: attach to the running RetrievalService actor; local: build it in-process; "
                   "auto: ray if found (default: %(default)s)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _warn_unused_llm_flags(settings) -> None:
    from rl4rec_core.settings import PolicySettings

    if settings.policy.policy != "dummy":
        return
    defaults = PolicySettings(policy="dummy")
    changed = [f.name for f in dataclasses.fields(PolicySettings)
               if f.name not in ("policy", "history_len", "dummy_words")  # what the dummy does use
               and getattr(settings.policy, f.name) != getattr(defaults, f.name)]
    if changed:
        log.warning("the dummy policy ignores %s", ", ".join(f"--{k}" for k in changed))


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from rl4rec_core.data import load_datasets, prepare_dataset
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.training.trainer import build_trainer

    _warn_unused_llm_flags(settings)
    run_settings = settings.run
    if run_settings.source:  # one dataset only: RunSettings refuses --source with a list
        prepare_dataset(run_settings.dataset_name, run_settings.source, fmt=run_settings.fmt,
                        encoding=run_settings.encoding)
    loaded = load_datasets(run_settings.datasets)  # names the missing one of a list
    if settings.trainer.num_workers:  # Ray Train: the workers load the data and share the Ray actor
        return _run_data_parallel(settings, args)
    dataset = loaded[0] if len(loaded) == 1 else loaded
    source, description = connect_reward_source(
        run_settings.dataset_name, settings.retrieval, mode=args.service, address=args.address,
        device=run_settings.device, fusion=settings.fusion,
    )
    print(description)
    trainer = build_trainer(settings, source, dataset, progress=not args.no_progress)
    kind = "DummyRecPolicy" if settings.policy.policy == "dummy" else settings.policy.policy_model
    print(f"Policy: {kind}; output: {settings.output_dir}")
    summary = trainer.train()
    print(
        f"✓ Training done: {summary['steps']} steps; avg reward {summary['first_avg_reward']:.4f} (first step) -> "
        f"{summary['last_avg_reward']:.4f} (last step); log: {summary['training_log']}"
    )
    return 0


def settings_from_args(args: argparse.Namespace):
    """The run's ``Settings`` from the flags."""
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.settings import Settings

    return Settings(**groups_from_args(args, SETTINGS))


def _run_data_parallel(settings, args: argparse.Namespace) -> int:
    """``--num_workers N``: the run on N Ray Train workers against the one Ray retrieval actor."""
    from rl4rec_core.errors import ConfigError
    from rl4rec_core.training.ray_train import train_data_parallel

    if args.service == "local":
        raise ConfigError("--service local builds the retrieval service inside one process, but --num_workers "
                          "workers share the Ray retrieval actor; drop --service local (or drop --num_workers)")
    n = settings.trainer.num_workers
    print(f"Data-parallel training: {n} Ray Train worker{'s' if n > 1 else ''}; output: {settings.output_dir}")
    summary = train_data_parallel(settings, address=args.address, progress=not args.no_progress)
    print(
        f"✓ Training done: {summary['steps']} steps on {n} workers; avg reward {summary['first_avg_reward']:.4f} "
        f"(first step) -> {summary['last_avg_reward']:.4f} (last step); log: {summary['training_log']}"
    )
    return 0
