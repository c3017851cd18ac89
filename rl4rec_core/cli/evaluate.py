"""``rl4rec evaluate``: full-ranking metrics of baselines, trained checkpoints and untrained policies, on the
same seeded users, with paired intervals.

A checkpoint generates with the settings it was trained with (its saved policy). An untrained policy
(``--policy``/``--policy_model`` and the other policy flags) is built as ``rl4rec train`` builds it, from
the same settings: the same prompt, item noun and token budget as a training run with those flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

SETTINGS = {
    "run": ("dataset_name", "seed", "device"),
    "retrieval": None,
    "policy": None,
    "fusion": None,
    "evaluation": ("eval_split", "eval_users", "baselines", "evaluate_untrained", "confidence", "n_bootstrap"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags
    from rl4rec_core.settings import SERVICE_MODES

    p = subparsers.add_parser(
        "evaluate",
        help="rank all items for held-out users and report Hit@k / NDCG@k / MRR",
        description="Full-ranking evaluation (history masked, target never masked, pessimistic ties) of "
        "baselines, --checkpoint folders and, with --policy/--policy_model, an untrained policy. A list "
        "--dataset_name (ml-100k,beauty) gives a table per dataset. The policy flags describe the untrained "
        "policy only: a checkpoint generates with its own saved settings.",
    )
    # None = not given: the policy flags name an untrained policy only when given, and the baselines not given
    # are the settings' default less what cannot be scored here (echo+prior without tuned settings)
    add_settings_flags(p, SETTINGS, given_only=("policy", "evaluation"))
    p.add_argument("--checkpoint", nargs="+", help="policy checkpoint folder(s) to evaluate, on the same users")
    p.add_argument("--labels", nargs="+", help="row names for the checkpoints (default: policy:<folder name>)")
    p.add_argument("--compare", nargs="+", default=[], metavar="A:B",
                   help="paired bootstrap intervals of A - B (NDCG@10, Hit@10, MRR) for rows A and B, "
                   "e.g. sft:echo+prior sft:untrained")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20], help="cut-offs k (default: 5 10 20)")
    p.add_argument("--service", choices=SERVICE_MODES, default="local",
                   help="policies: score with an in-process retrieval service (local), the running Ray actor (ray), "
                   "or the actor when one is found (auto) (default: %(default)s)")
    p.add_argument("--rank_batch_size", type=int, default=1024, help="users ranked at once (bounds memory)")
    p.add_argument("--output", help="also write the results as JSON to this path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import given, groups_from_args
    from rl4rec_core.errors import ConfigError
    from rl4rec_core.settings import PolicySettings

    groups = groups_from_args(args, SETTINGS)
    if args.checkpoint and given(args, PolicySettings):
        raise ConfigError(f"a checkpoint generates with its own saved settings; drop "
                          f"{', '.join('--' + k for k in given(args, PolicySettings))} (or --checkpoint)")
    if not groups["evaluation"].baselines and not args.checkpoint and not untrained_policy(args):
        raise ConfigError("nothing to evaluate: pass --baselines popularity|echo|all, --checkpoint DIR or "
                          "--policy llm (--policy_model MODEL)")
    if any(k <= 0 for k in args.ks):
        raise ConfigError(f"--ks must be positive integers, got {args.ks}")
    _check_checkpoints(args, groups["run"].dataset_name)
    from rl4rec_core.devices import resolve_device

    # before anything is ranked or loaded: a bad device fails at once
    groups["run"] = dataclasses.replace(groups["run"], device=str(resolve_device(groups["run"].device)))
    names = groups["run"].datasets
    output = Path(args.output) if args.output else None
    outputs = {names[0]: output} if len(names) == 1 else {n: output and _named(output, n) for n in names}
    if output:  # before the evaluation runs, not after it
        from rl4rec_core.write_errors import check_output_file

        for path in outputs.values():
            check_output_file(path)
    for i, (name, path) in enumerate(outputs.items()):
        if i:
            print()
        _evaluate(args, groups, name, path)
    return 0


def _named(output: Path, dataset: str) -> Path:
    """One JSON per dataset beside the named one: metrics.json -> metrics.ml-100k.json."""
    return output.with_name(f"{output.stem}.{dataset}{output.suffix}")


def _check_checkpoints(args: argparse.Namespace, dataset_name: str) -> None:
    """Before anything is ranked: every --checkpoint exists, and --labels names each once."""
    from rl4rec_core.errors import ConfigError, MissingArtifactError

    checkpoints = args.checkpoint or []
    for ckpt in checkpoints:
        if not Path(ckpt).exists():
            raise MissingArtifactError(
                f"no checkpoint at {ckpt}; train one with `rl4rec train --dataset_name {dataset_name} ...`, "
                "or pass --policy llm to evaluate an untrained policy"
            )
    if args.labels and len(args.labels) != len(checkpoints):
        raise ConfigError(f"--labels gives {len(args.labels)} names for {len(checkpoints)} checkpoints; give one per "
                          "checkpoint")


def untrained_policy(args: argparse.Namespace) -> bool:
    """Whether the policy flags name an untrained policy to evaluate (any of them given, no --checkpoint)."""
    from rl4rec_core.cli.flags import given
    from rl4rec_core.settings import PolicySettings

    return bool(given(args, PolicySettings)) and not args.checkpoint


def policies(args: argparse.Namespace, groups: dict, dataset) -> list[tuple[str, object]]:
    """``[(row name, policy)]`` to evaluate: the checkpoints' trained policies (and the first one's start with
    ``evaluate_untrained``), or the untrained policy the policy flags describe, built as training builds it."""
    from rl4rec_core.evaluation.policy_eval import load_policy
    from rl4rec_core.policy.registry import build_policy
    from rl4rec_core.settings import Settings

    device = groups["run"].device
    if untrained_policy(args):
        p = groups["policy"]
        label = "policy:" + ("dummy" if p.policy == "dummy" else Path(p.policy_model).name or p.policy_model)
        settings = Settings(run=groups["run"], retrieval=groups["retrieval"], policy=p, fusion=groups["fusion"])
        return [(label, build_policy(settings, dataset, device))]
    checkpoints = args.checkpoint or []
    labels = args.labels or [f"policy:{Path(str(t)).name or t}" for t in checkpoints]
    rows = [(label, load_policy(ckpt, device=device)) for label, ckpt in zip(labels, checkpoints)]
    if checkpoints and groups["evaluation"].evaluate_untrained:  # the first one's start (SFT for GRPO-from-SFT)
        rows.append(("untrained", load_policy(checkpoints[0], trained=False, device=device)))
    return rows


def _policy_rows(args, groups: dict, dataset, users) -> tuple[dict, dict]:
    """Rows and per-user ranks of the policies, on ``users``, through the one service selector."""
    from rl4rec_core.evaluation.policy_eval import evaluate_policy
    from rl4rec_core.retrieval.source import connect_reward_source

    run_settings = groups["run"]
    rows, ranks = {}, {}
    chosen = policies(args, groups, dataset)
    fusion = groups["fusion"]
    if getattr(args, "reward_source", None) is None:  # one service holds every dataset of a list
        args.reward_source, description = connect_reward_source(
            run_settings.dataset_name, groups["retrieval"], mode=args.service, device=run_settings.device,
            fusion=fusion if fusion.base != "none" else None)
        print(description)
    if fusion.base != "none":  # each policy fused with the base (gamma chosen on validation), and its text alone
        return _fused_rows(args, groups, dataset, users, chosen)
    for name, policy in chosen:
        summary, r = evaluate_policy(dataset, policy, split=groups["evaluation"].eval_split,
                                     service=args.reward_source, users=users, ks=tuple(args.ks), progress=True)
        rows[name], ranks[name] = {**summary, "users": int(len(r))}, r
    return rows, ranks


def _fused_rows(args, groups: dict, dataset, users, chosen) -> tuple[dict, dict]:
    """``<row>`` fused with the base at the gamma chosen on ``--gamma_users`` seeded validation users (``--gamma``: that
    one), and ``<row> text``: its text alone through the retriever."""
    from rl4rec_core.evaluation.fused_eval import evaluate_fused, gamma_users

    e, fusion = groups["evaluation"], groups["fusion"]
    valid_users = gamma_users(dataset, fusion, groups["run"].seed)
    rows, ranks = {}, {}
    for name, policy in chosen:
        out = evaluate_fused(dataset, policy, args.reward_source, fusion, e.eval_split, users, valid_users,
                             gamma=fusion.gamma, progress=True)
        for row, key in ((name, "fused"), (f"{name} text", "text")):
            summary, r = out[key]
            rows[row], ranks[row] = {**summary, "users": int(len(r))}, r
    return rows, ranks


def _untrained_interval(ranks: dict, evaluation) -> dict | None:
    """The first checkpoint's NDCG@10 minus its start's, with a paired bootstrap interval (printed)."""
    from rl4rec_core.evaluation.policy_eval import paired_bootstrap
    from rl4rec_core.metrics import ndcg_at_k

    if "untrained" not in ranks:
        return None
    trained = ranks[next(iter(ranks))]
    diff, lo, hi = paired_bootstrap(ndcg_at_k(trained, 10), ndcg_at_k(ranks["untrained"], 10),
                                    n=evaluation.n_bootstrap, confidence=evaluation.confidence)
    level = f"{evaluation.confidence:.0%}"
    print(f"NDCG@10 trained - untrained: {diff:+.4f}, paired bootstrap {level} interval [{lo:+.4f}, {hi:+.4f}] "
          f"over {len(trained)} users ({'excludes' if lo > 0 or hi < 0 else 'includes'} 0)")
    return {"metric": "ndcg@10", "trained_minus_untrained": diff, "ci95": [lo, hi], "users": int(len(trained))}


def _baselines(args: argparse.Namespace, evaluation, retrieval, dataset_name: str) -> list[str]:
    """The baselines to rank: the ones given; or the settings' default, less echo+prior where nothing is tuned
    (it ranks with the tuned scorer: given explicitly, its absence is an error naming the fix)."""
    from rl4rec_core.cli.flags import given
    from rl4rec_core.retrieval.hybrid import settings_path
    from rl4rec_core.settings import EvaluationSettings

    names = list(evaluation.baselines)
    if "baselines" in given(args, EvaluationSettings) or "echo+prior" not in names or retrieval.weight_overrides:
        return names
    if settings_path(dataset_name, retrieval.emb_type, retrieval.emb_model_name).is_file():
        return names
    print(f"echo+prior left out: {dataset_name} has no tuned retrieval settings (`rl4rec tune-retrieval "
          f"--dataset_name {dataset_name}`)")
    return [n for n in names if n != "echo+prior"]


def _pair(spec: str, ranks: dict) -> tuple[str, str]:
    from rl4rec_core.errors import ConfigError

    a, sep, b = spec.partition(":")
    if not sep or a not in ranks or b not in ranks:
        raise ConfigError(f"--compare {spec!r}: give A:B with two evaluated rows; the rows are {sorted(ranks)}")
    return a, b


def _evaluate(args: argparse.Namespace, groups: dict, dataset_name: str, output) -> int:
    """Evaluate and print the rows of one dataset (the whole command for a single dataset)."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation.baselines import rank_baselines
    from rl4rec_core.evaluation.bootstrap import format_intervals, paired_intervals
    from rl4rec_core.evaluation.policy_eval import select_users
    from rl4rec_core.evaluation.ranking import format_table, write_metrics

    e = groups["evaluation"]
    dataset = load_dataset(dataset_name)
    users = select_users(len(dataset.split(e.eval_split)), e.eval_users, groups["run"].seed)
    done = rank_baselines(_baselines(args, e, groups["retrieval"], dataset_name), dataset, e.eval_split, users,
                          groups["retrieval"], args.ks, args.rank_batch_size)
    rows = {name: out["metrics"] for name, out in done.items()}
    ranks = {name: out["ranks"] for name, out in done.items()}
    extra: dict = {}
    if args.checkpoint or untrained_policy(args):
        policy_rows, policy_ranks = _policy_rows(args, groups, dataset, users)
        rows, ranks = {**policy_rows, **rows}, {**policy_ranks, **ranks}
        if (boot := _untrained_interval(policy_ranks, e)) is not None:
            extra["paired_bootstrap"] = boot
    extra["ranks"] = {name: r.tolist() for name, r in ranks.items()}  # per user: enough to redo any paired test
    print(f"{dataset_name} · {e.eval_split} split · full ranking over {dataset.num_items} items, history masked")
    print(format_table(rows))
    if args.compare:
        pairs = [_pair(spec, extra["ranks"]) for spec in args.compare]
        extra["intervals"] = paired_intervals(extra["ranks"], pairs, n=e.n_bootstrap, confidence=e.confidence)
        print(f"\nPaired differences over the same {len(users)} users, bootstrap {e.confidence:.0%} intervals:")
        print(format_intervals(extra["intervals"]))
    if output:
        path = write_metrics(output, rows, dataset=dataset_name, split=e.eval_split, ks=list(args.ks), **extra)
        print(f"wrote {path}")
    return 0
