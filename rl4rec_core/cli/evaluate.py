"""``rl4rec evaluate``: full-ranking metrics for baselines (and, through policy_eval, trained policies)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from rl4rec_core.baselines import BASELINES
from rl4rec_core.embedding import BACKENDS, DEFAULT_EMB_MODEL
from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.metrics import DEFAULT_KS, ndcg_at_k


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="rank all items for held-out users and report Hit@k / NDCG@k / MRR",
        description="Full-ranking evaluation (history masked, target never masked, pessimistic ties) "
        "of baselines and, with --checkpoint/--policy, of a policy.",
    )
    p.add_argument("--dataset", required=True, help="prepared dataset name")
    p.add_argument("--baseline", choices=[*BASELINES, "all"], help="baseline(s) to evaluate")
    p.add_argument("--checkpoint", help="policy checkpoint folder to evaluate (needs rl4rec_core.policy_eval)")
    p.add_argument("--policy", help="policy model name or path to evaluate untrained (needs rl4rec_core.policy_eval)")
    p.add_argument("--split", choices=("valid", "test"), default="test", help="held-out split (default: test)")
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), help="cut-offs k (default: 5 10 20)")
    p.add_argument("--emb_model", "--emb_model_name", dest="emb_model", default=DEFAULT_EMB_MODEL,
                   help="embedding model of the item embeddings (echo baseline and policies)")
    p.add_argument("--emb_type", default="item", help="embedding type label (default: item)")
    p.add_argument("--emb_backend", choices=BACKENDS, default="auto", help="embedding backend for --service local")
    p.add_argument("--scorer", choices=("auto", "hybrid", "cosine"), default="auto",
                   help="policies with --service local: the tuned hybrid scorer when `rl4rec tune-retrieval` wrote "
                   "settings (auto), required (hybrid), or plain cosine")
    p.add_argument("--service", choices=("local", "actor"), default="local",
                   help="policies: score with an in-process retrieval service (local) or the running Ray actor")
    p.add_argument("--actor_name", default="RetrievalService", help="name of the retrieval actor (--service actor)")
    p.add_argument("--namespace", default="rl4rec", help="Ray namespace of the retrieval actor")
    p.add_argument("--with_untrained", action="store_true",
                   help="with --checkpoint: also evaluate the untrained starting policy on the same users and "
                   "print a paired bootstrap 95%% interval of the NDCG@10 difference")
    p.add_argument("--max_users", type=int, help="policies: evaluate a seeded subset of N users (quick checks)")
    p.add_argument("--batch_size", type=int, default=1024, help="users ranked at once (bounds memory)")
    p.add_argument("--output", help="also write the results as JSON to this path")
    p.set_defaults(func=run)


def _retrieval_service(args, dataset):
    """``local``: an in-process RetrievalService; ``actor``: the running named Ray actor."""
    from rl4rec_core import retrieval

    if args.service == "actor":
        return retrieval.RetrievalClient(retrieval.get_retrieval_actor(args.actor_name, args.namespace))
    return retrieval.RetrievalService(
        emb_model_name=args.emb_model, emb_type=args.emb_type, datasets=(dataset.name,), backend=args.emb_backend,
        scorer=args.scorer,
    )


def _policy_rows(args, dataset) -> tuple[dict[str, dict[str, float]], dict]:
    """Evaluate ``--checkpoint`` / ``--policy`` through ``rl4rec_core.policy_eval`` (imported lazily)."""
    try:
        module = importlib.import_module("rl4rec_core.policy_eval")
    except ModuleNotFoundError as e:
        if e.name != "rl4rec_core.policy_eval":
            raise
        raise ConfigError(
            "policy evaluation (--checkpoint/--policy) is not available yet in this version "
            "(rl4rec_core.policy_eval is missing); evaluate a --baseline instead"
        ) from None
    if args.with_untrained and not args.checkpoint:
        raise ConfigError("--with_untrained compares a trained --checkpoint with its starting policy; pass --checkpoint DIR")
    if args.checkpoint and not Path(args.checkpoint).exists():
        raise MissingArtifactError(
            f"no checkpoint at {args.checkpoint}; train one with `rl4rec train --dataset {dataset.name} ...`, "
            "or pass --policy MODEL to evaluate an untrained model"
        )
    target = args.checkpoint or args.policy
    service = _retrieval_service(args, dataset)

    def evaluate(policy):
        # the same seeded users for every policy, so per-user ranks pair up
        summary, ranks = module.evaluate_policy(dataset, policy, split=args.split, service=service,
                                                max_users=args.max_users, ks=tuple(args.ks), progress=True)
        return {**summary, "users": int(len(ranks))}, ranks

    rows, extra = {}, {}
    name = f"policy:{Path(str(target)).name or target}"
    rows[name], ranks = evaluate(target)
    extra["ranks"] = {name: ranks.tolist()}  # per user, in evaluation order: enough to redo any paired test
    if args.with_untrained:
        untrained = module.load_policy(args.checkpoint, trained=False)
        rows["untrained"], base_ranks = evaluate(untrained)
        extra["ranks"]["untrained"] = base_ranks.tolist()
        diff, lo, hi = module.paired_bootstrap(ndcg_at_k(ranks, 10), ndcg_at_k(base_ranks, 10))
        extra["paired_bootstrap"] = {"metric": "ndcg@10", "trained_minus_untrained": diff, "ci95": [lo, hi],
                                     "users": int(len(ranks))}
        print(f"NDCG@10 trained - untrained: {diff:+.4f}, paired bootstrap 95% interval [{lo:+.4f}, {hi:+.4f}] "
              f"over {len(ranks)} users ({'excludes' if lo > 0 or hi < 0 else 'includes'} 0)")
    return rows, extra


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.baselines import baseline_scorer, make_baseline
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation import evaluate_scores, format_table, write_metrics

    if not args.baseline and not args.checkpoint and not args.policy:
        raise ConfigError("nothing to evaluate: pass --baseline popularity|echo|all, --checkpoint DIR or --policy MODEL")
    if any(k <= 0 for k in args.ks):
        raise ConfigError(f"--ks must be positive integers, got {args.ks}")
    dataset = load_dataset(args.dataset)
    split = dataset.split(args.split)
    rows: dict[str, dict[str, float]] = {}
    extra: dict = {}
    names = list(BASELINES) if args.baseline == "all" else [args.baseline] if args.baseline else []
    for name in names:
        scorer = make_baseline(name, dataset, emb_model=args.emb_model, emb_type=args.emb_type)
        rows[name] = evaluate_scores(scorer, split, ks=args.ks, batch_size=args.batch_size)
        rows[name]["scorer"] = baseline_scorer(scorer)
    if args.checkpoint or args.policy:
        policy_rows, extra = _policy_rows(args, dataset)
        rows.update(policy_rows)
    print(f"{args.dataset} · {args.split} split · full ranking over {dataset.num_items} items, history masked")
    print(format_table(rows))
    if args.output:
        path = write_metrics(args.output, rows, dataset=args.dataset, split=args.split, ks=list(args.ks), **extra)
        print(f"wrote {path}")
    return 0
