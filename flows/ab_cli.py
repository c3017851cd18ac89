"""``rl4rec ab``: the offline A/B report of two recommenders on the same users (docs/training.md,
"Offline A/B report"): report.md, ab.png, per_user.csv and ab.json in ``--out``, logged to MLflow.

A flows-level command (registered in ``flows/cli.py``) because it reaches MLflow, through ``tasks/ab.py``:
registry URIs as checkpoints and the report as a run. The report is computed by the core
(``rl4rec_core/evaluation/ab*.py``); ``tasks.ab`` loads only when ``run`` needs it."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

HELP = "offline A/B report of two checkpoints, registered models or baselines on the same users"
SETTINGS = {"run": ("dataset_name", "seed", "device"), "retrieval": None,
            "evaluation": ("eval_split", "eval_users", "confidence", "n_bootstrap"), "tracking": ("experiment",)}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags
    from rl4rec_core.evaluation.ab_specs import SPEC_HELP as spec_help
    from rl4rec_core.settings import SERVICE_MODES

    p = subparsers.add_parser("ab", help=HELP, description=f"{HELP}: paired differences with bootstrap intervals "
                              "(NDCG@10, Hit@10, MRR), win/tie/loss, history-length and head/tail segments.")
    p.add_argument("--a", required=True, metavar="SPEC", help=f"system A: {spec_help}")
    p.add_argument("--b", required=True, metavar="SPEC", help="system B, as --a (differences are A - B)")
    add_settings_flags(p, SETTINGS)
    p.add_argument("--out", help="folder of the report (default: outputs/ab/<A>_vs_<B>)")
    p.add_argument("--service", choices=SERVICE_MODES, default="local",
                   help="checkpoints: score with an in-process retrieval service (local), the running Ray actor "
                   "(ray), or the actor when one is found (auto) (default: %(default)s)")
    p.add_argument("--no_mlflow", action="store_true", help="write the report files only, log nothing to MLflow")
    p.set_defaults(func=run)


def default_out(a: str, b: str) -> Path:
    """``outputs/ab/<a>_vs_<b>`` with anything but letters, digits and ``._+@-`` made ``_``."""
    def clean(s):
        return re.sub(r"[^A-Za-z0-9._+@-]+", "_", s).strip("_") or "x"

    return Path("outputs") / "ab" / f"{clean(a)}_vs_{clean(b)}"


def _ranks(specs, groups: dict, dataset, users, service_mode: str):
    """Per-user ranks ``[U]`` of each spec; a spec equal to an earlier one (A == B) is not evaluated twice.
    Policies' texts are ranked through the one service selector (``retrieval/source.py``)."""
    from rl4rec_core.evaluation.ab_specs import policy_ranks
    from rl4rec_core.evaluation.baselines import rank_baselines
    from rl4rec_core.retrieval.source import connect_reward_source

    split, retrieval, device = groups["evaluation"].eval_split, groups["retrieval"], groups["run"].device
    done, service = {}, None
    for spec in specs:
        if spec.key in done:
            continue
        if spec.baseline:
            done[spec.key] = rank_baselines([spec.baseline], dataset, split, users, retrieval)[spec.baseline]["ranks"]
            continue
        if service is None:
            service, description = connect_reward_source(dataset.name, retrieval, mode=service_mode, device=device)
            print(description)
        done[spec.key] = policy_ranks(spec.checkpoint, dataset, split, users, service, device)
    return [done[s.key] for s in specs]


def _registry_checkpoint(uri: str) -> Path:
    """``tasks.ab.registry_checkpoint``, imported (with MLflow and Prefect) only for a registry URI."""
    from tasks.ab import registry_checkpoint

    return registry_checkpoint(uri)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.data import load_dataset
    from rl4rec_core.devices import resolve_device
    from rl4rec_core.evaluation import ab
    from rl4rec_core.evaluation.ab_output import write_report
    from rl4rec_core.evaluation.ab_specs import resolve_spec
    from rl4rec_core.evaluation.policy_eval import select_users

    groups = groups_from_args(args, SETTINGS)
    r, e = groups["run"], groups["evaluation"]
    if len(r.datasets) > 1:
        from rl4rec_core.errors import ConfigError

        raise ConfigError(f"an A/B report compares two systems on one dataset, got {r.dataset_name!r}; run it per dataset")
    dataset = load_dataset(r.dataset_name)
    # both, before any slow evaluation; registry URIs through tasks/registry.py (tasks.ab)
    specs = [resolve_spec(args.a, "--a", registry_resolver=_registry_checkpoint),
             resolve_spec(args.b, "--b", registry_resolver=_registry_checkpoint)]
    groups["run"] = dataclasses.replace(r, device=str(resolve_device(r.device)))
    users = select_users(len(dataset.split(e.eval_split)), e.eval_users, r.seed)
    ranks_a, ranks_b = _ranks(specs, groups, dataset, users, args.service)
    report = ab.report_for_users(dataset, e.eval_split, users, ranks_a, ranks_b, a=specs[0].label, b=specs[1].label,
                                 n_bootstrap=e.n_bootstrap, seed=r.seed, confidence=e.confidence)
    files = write_report(report, Path(args.out) if args.out else default_out(specs[0].label, specs[1].label))
    m = report.metric(report.decided_by)
    print(f"{report.a} (A) vs {report.b} (B), {dataset.name} {e.eval_split}, {report.users} users: "
          f"{m.metric} A - B {m.diff:+.4f} [{m.lo:+.4f}, {m.hi:+.4f}] ({m.verdict}); "
          f"wins {report.wins}, ties {report.ties}, losses {report.losses}")
    print(f"wrote {files['report']} and {files['figure']}")
    if not args.no_mlflow:
        from tasks.ab import log_ab_run
        from tasks.tracking import tracking_uri

        experiment = groups["tracking"].experiment
        run_id = log_ab_run(report, files, experiment=experiment)
        print(f"MLflow run {run_id} (experiment {experiment!r}, {tracking_uri()})")
    return 0
