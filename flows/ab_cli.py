"""``rl4rec ab``: the offline A/B report of two recommenders on the same users (docs/training.md,
"Offline A/B report"): report.md, ab.png, per_user.csv and ab.json in ``--out``, logged to MLflow.

A flows-level command (registered in ``flows/cli.py``) because it reaches MLflow, through ``tasks/ab.py``:
registry URIs as checkpoints and the report as a run. The report is computed by the core
(``rl4rec_core/evaluation/ab*.py``); ``tasks.ab`` loads only when ``run`` needs it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rl4rec_core.devices import DEVICE_HELP
from rl4rec_core.embeddings.encoders import BACKENDS
from rl4rec_core.errors import ConfigError
from rl4rec_core.retrieval.source import SERVICE_MODES
from rl4rec_core.settings import (
    DEFAULT_ACTOR_NAME,
    DEFAULT_EMB_MODEL,
    DEFAULT_EXPERIMENT,
    EVAL_SPLITS,
    RAY_NAMESPACE,
)

HELP = "offline A/B report of two checkpoints, registered models or baselines on the same users"


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.evaluation.ab_specs import SPEC_HELP

    p = subparsers.add_parser("ab", help=HELP, description=f"{HELP}: paired differences with bootstrap intervals "
                              "(NDCG@10, Hit@10, MRR), win/tie/loss, history-length and head/tail segments.")
    p.add_argument("--a", required=True, metavar="SPEC", help=f"system A: {SPEC_HELP}")
    p.add_argument("--b", required=True, metavar="SPEC", help="system B, as --a (differences are A - B)")
    p.add_argument("--dataset", "--dataset_name", dest="dataset", required=True, help="prepared dataset name")
    p.add_argument("--split", choices=EVAL_SPLITS, default="test", help="held-out split (default: %(default)s)")
    p.add_argument("--max_users", type=int, help="a seeded subset of N users (default: every user of the split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the user subset and the bootstrap")
    p.add_argument("--n_bootstrap", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default: %(default)s)")
    p.add_argument("--out", help="folder of the report (default: outputs/ab/<A>_vs_<B>)")
    p.add_argument("--service", choices=SERVICE_MODES, default="local",
                   help="checkpoints: score with an in-process retrieval service (local), the running Ray actor "
                   "(ray), or the actor when one is found (auto) (default: %(default)s)")
    p.add_argument("--emb_model_name", "--emb_model", dest="emb_model", default=DEFAULT_EMB_MODEL,
                   help="embedding model of the item embeddings")
    p.add_argument("--emb_type", default="item", help="embedding type label (default: item)")
    p.add_argument("--emb_backend", choices=BACKENDS, default="auto", help="embedding backend for --service local")
    p.add_argument("--actor_name", default=DEFAULT_ACTOR_NAME, help="name of the retrieval actor (--service ray)")
    p.add_argument("--namespace", default=RAY_NAMESPACE, help="Ray namespace of the retrieval actor")
    p.add_argument("--device", default="cpu", help=f"policies and the in-process service: {DEVICE_HELP}")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment of the run")
    p.add_argument("--no_mlflow", action="store_true", help="write the report files only, log nothing to MLflow")
    p.set_defaults(func=run)


def default_out(a: str, b: str) -> Path:
    """``outputs/ab/<a>_vs_<b>`` with anything but letters, digits and ``._+@-`` made ``_``."""
    def clean(s):
        return re.sub(r"[^A-Za-z0-9._+@-]+", "_", s).strip("_") or "x"

    return Path("outputs") / "ab" / f"{clean(a)}_vs_{clean(b)}"


def _service(args, dataset):
    """Where policies' texts are ranked, through the one selector (``retrieval/source.py``)."""
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.settings import RetrievalSettings

    retrieval = RetrievalSettings(emb_model_name=args.emb_model, emb_type=args.emb_type, backend=args.emb_backend,
                                  actor_name=args.actor_name, namespace=args.namespace)
    service, description = connect_reward_source(dataset.name, retrieval, mode=args.service, device=args.device)
    print(description)
    return service


def _ranks(specs, args, dataset, users):
    """Per-user ranks ``[U]`` of each spec; a spec equal to an earlier one (A == B) is not evaluated twice."""
    from rl4rec_core.evaluation.ab_specs import baseline_ranks, policy_ranks

    done, service = {}, None
    for spec in specs:
        if spec.key in done:
            continue
        if spec.baseline:
            done[spec.key] = baseline_ranks(spec.baseline, dataset, args.split, users, args.emb_model, args.emb_type)
            continue
        service = service or _service(args, dataset)
        done[spec.key] = policy_ranks(spec.checkpoint, dataset, args.split, users, service,
                                      max_users=args.max_users, seed=args.seed, device=args.device)
    return [done[s.key] for s in specs]


def _registry_checkpoint(uri: str) -> Path:
    """``tasks.ab.registry_checkpoint``, imported (with MLflow and Prefect) only for a registry URI."""
    from tasks.ab import registry_checkpoint

    return registry_checkpoint(uri)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.data import load_dataset
    from rl4rec_core.devices import resolve_device
    from rl4rec_core.evaluation import ab
    from rl4rec_core.evaluation.ab_output import write_report
    from rl4rec_core.evaluation.ab_specs import resolve_spec
    from rl4rec_core.evaluation.policy_eval import select_users

    if args.n_bootstrap < 1 or not 0 < args.confidence < 1:
        raise ConfigError("--n_bootstrap must be >= 1 and --confidence in (0, 1), e.g. 1000 and 0.95")
    if args.max_users is not None and args.max_users < 1:
        raise ConfigError(f"--max_users must be >= 1, got {args.max_users}; leave it out for every user")
    dataset = load_dataset(args.dataset)
    # both, before any slow evaluation; registry URIs through tasks/registry.py (tasks.ab)
    specs = [resolve_spec(args.a, "--a", registry_resolver=_registry_checkpoint),
             resolve_spec(args.b, "--b", registry_resolver=_registry_checkpoint)]
    args.device = str(resolve_device(args.device))
    sp = dataset.split(args.split)
    users = select_users(len(sp), args.max_users, args.seed)
    ranks_a, ranks_b = _ranks(specs, args, dataset, users)
    report = ab.report_for_users(dataset, args.split, users, ranks_a, ranks_b, a=specs[0].label, b=specs[1].label,
                                 n_bootstrap=args.n_bootstrap, seed=args.seed, confidence=args.confidence)
    files = write_report(report, Path(args.out) if args.out else default_out(specs[0].label, specs[1].label))
    m = report.metric(report.decided_by)
    print(f"{report.a} (A) vs {report.b} (B), {dataset.name} {args.split}, {report.users} users: "
          f"{m.metric} A - B {m.diff:+.4f} [{m.lo:+.4f}, {m.hi:+.4f}] ({m.verdict}); "
          f"wins {report.wins}, ties {report.ties}, losses {report.losses}")
    print(f"wrote {files['report']} and {files['figure']}")
    if not args.no_mlflow:
        from tasks.ab import log_ab_run
        from tasks.tracking import tracking_uri

        run_id = log_ab_run(report, files, experiment=args.experiment)
        print(f"MLflow run {run_id} (experiment {args.experiment!r}, {tracking_uri()})")
    return 0
