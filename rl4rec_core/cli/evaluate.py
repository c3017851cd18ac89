"""``rl4rec evaluate``: full-ranking metrics for baselines (and, through policy_eval, trained policies)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rl4rec_core.devices import DEVICE_HELP, resolve_device
from rl4rec_core.embeddings.encoders import BACKENDS
from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.evaluation.baselines import BASELINES
from rl4rec_core.metrics import DEFAULT_KS, ndcg_at_k
from rl4rec_core.retrieval.source import SERVICE_MODES
from rl4rec_core.settings import DEFAULT_ACTOR_NAME, DEFAULT_EMB_MODEL, EVAL_SPLITS, RAY_NAMESPACE, SCORERS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="rank all items for held-out users and report Hit@k / NDCG@k / MRR",
        description="Full-ranking evaluation (history masked, target never masked, pessimistic ties) "
        "of baselines and, with --checkpoint/--policy, of a policy.",
    )
    p.add_argument("--dataset", required=True, help="prepared dataset name; several comma-separated "
                   "(ml-100k,beauty, as a run on several trained) give a table per dataset")
    p.add_argument("--baseline", nargs="+", choices=[*BASELINES, "all"], help="baseline(s) to evaluate")
    p.add_argument("--checkpoint", nargs="+", help="policy checkpoint folder(s) to evaluate, on the same users")
    p.add_argument("--labels", nargs="+", help="row names for the checkpoints (default: policy:<folder name>)")
    p.add_argument("--compare", nargs="+", default=[], metavar="A:B",
                   help="paired bootstrap 95%% intervals of A - B (NDCG@10, Hit@10, MRR) for rows A and B, "
                   "e.g. sft:echo+prior sft:untrained")
    p.add_argument("--policy", help="policy model name or path to evaluate untrained (needs rl4rec_core.evaluation.policy_eval)")
    p.add_argument("--split", choices=EVAL_SPLITS, default="test", help="held-out split (default: test)")
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), help="cut-offs k (default: 5 10 20)")
    p.add_argument("--emb_model", "--emb_model_name", dest="emb_model", default=DEFAULT_EMB_MODEL,
                   help="embedding model of the item embeddings (echo baseline and policies)")
    p.add_argument("--emb_type", default="item", help="embedding type label (default: item)")
    p.add_argument("--emb_backend", choices=BACKENDS, default="auto", help="embedding backend for --service local")
    p.add_argument("--scorer", choices=SCORERS, default="auto",
                   help="policies with --service local: the tuned hybrid scorer when `rl4rec tune-retrieval` wrote "
                   "settings (auto), required (hybrid), or plain cosine")
    p.add_argument("--service", choices=SERVICE_MODES, default="local",
                   help="policies: score with an in-process retrieval service (local), the running Ray actor (ray), "
                   "or the actor when one is found (auto) (default: %(default)s)")
    p.add_argument("--actor_name", default=DEFAULT_ACTOR_NAME, help="name of the retrieval actor (--service ray)")
    p.add_argument("--namespace", default=RAY_NAMESPACE, help="Ray namespace of the retrieval actor")
    p.add_argument("--device", default="cpu",
                   help=f"policies and the in-process service: {DEVICE_HELP} (default: %(default)s)")
    p.add_argument("--with_untrained", action="store_true",
                   help="with --checkpoint: also evaluate the untrained starting policy on the same users and "
                   "print a paired bootstrap 95%% interval of the NDCG@10 difference")
    p.add_argument("--max_users", type=int, help="policies: evaluate a seeded subset of N users (quick checks)")
    p.add_argument("--batch_size", type=int, default=1024, help="users ranked at once (bounds memory)")
    p.add_argument("--output", help="also write the results as JSON to this path")
    p.set_defaults(func=run)


def _retrieval_service(args, dataset):
    """The policies' scorer, through the one service selector (``retrieval/source.py``)."""
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.settings import RetrievalSettings

    if getattr(args, "reward_source", None) is None:  # one service holds every dataset of a list
        retrieval = RetrievalSettings(emb_model_name=args.emb_model, emb_type=args.emb_type, scorer=args.scorer,
                                      backend=args.emb_backend, actor_name=args.actor_name, namespace=args.namespace)
        args.reward_source, description = connect_reward_source(args.dataset, retrieval, mode=args.service,
                                                                device=args.device)
        print(description)
    return args.reward_source


def _policy_rows(args, dataset) -> tuple[dict[str, dict[str, float]], dict]:
    """Evaluate ``--checkpoint`` / ``--policy`` (``policy_eval`` is imported here: it loads transformers)."""
    from rl4rec_core.evaluation import policy_eval as module

    if args.with_untrained and not args.checkpoint:
        raise ConfigError("--with_untrained compares a trained --checkpoint with its starting policy; pass --checkpoint DIR")
    for ckpt in args.checkpoint or []:
        if not Path(ckpt).exists():
            raise MissingArtifactError(
                f"no checkpoint at {ckpt}; train one with `rl4rec train --dataset {dataset.name} ...`, "
                "or pass --policy MODEL to evaluate an untrained model"
            )
    args.device = str(resolve_device(args.device))  # before any model or service loads
    targets = args.checkpoint or [args.policy]
    labels = args.labels or [f"policy:{Path(str(t)).name or t}" for t in targets]
    if len(labels) != len(targets):
        raise ConfigError(f"--labels gives {len(labels)} names for {len(targets)} checkpoints; give one per checkpoint")
    service = _retrieval_service(args, dataset)

    def evaluate(policy):
        # the same seeded users for every policy, so per-user ranks pair up
        summary, ranks = module.evaluate_policy(dataset, policy, split=args.split, service=service,
                                                max_users=args.max_users, ks=tuple(args.ks), progress=True,
                                                device=args.device)
        return {**summary, "users": int(len(ranks))}, ranks

    rows, extra = {}, {"ranks": {}}
    for name, target in zip(labels, targets):
        policy = module.load_policy(target, device=args.device) if args.checkpoint else target
        rows[name], ranks = evaluate(policy)
        # per user, in evaluation order: enough to redo any paired test
        extra["ranks"][name] = ranks.tolist()
    name, ranks = labels[0], torch.tensor(extra["ranks"][labels[0]])
    if args.with_untrained:  # the first checkpoint's starting policy (SFT for GRPO-from-SFT; else the base)
        untrained = module.load_policy(args.checkpoint[0], trained=False, device=args.device)
        rows["untrained"], base_ranks = evaluate(untrained)
        extra["ranks"]["untrained"] = base_ranks.tolist()
        diff, lo, hi = module.paired_bootstrap(ndcg_at_k(ranks, 10), ndcg_at_k(base_ranks, 10))
        extra["paired_bootstrap"] = {"metric": "ndcg@10", "trained_minus_untrained": diff, "ci95": [lo, hi],
                                     "users": int(len(ranks))}
        print(f"NDCG@10 trained - untrained: {diff:+.4f}, paired bootstrap 95% interval [{lo:+.4f}, {hi:+.4f}] "
              f"over {len(ranks)} users ({'excludes' if lo > 0 or hi < 0 else 'includes'} 0)")
    return rows, extra


def _pair(spec: str, ranks: dict) -> tuple[str, str]:
    a, sep, b = spec.partition(":")
    if not sep or a not in ranks or b not in ranks:
        raise ConfigError(f"--compare {spec!r}: give A:B with two evaluated rows; the rows are {sorted(ranks)}")
    return a, b


def run(args: argparse.Namespace) -> int:
    if not args.baseline and not args.checkpoint and not args.policy:
        raise ConfigError("nothing to evaluate: pass --baseline popularity|echo|all, --checkpoint DIR or --policy MODEL")
    if any(k <= 0 for k in args.ks):
        raise ConfigError(f"--ks must be positive integers, got {args.ks}")
    from rl4rec_core.dataset_list import parse_names

    names = parse_names(args.dataset)  # the list's checks (empty or repeated names)
    if len(names) == 1:
        return _evaluate(args, names[0], args.output)
    output = Path(args.output) if args.output else None
    for i, name in enumerate(names):
        if i:
            print()
        # one JSON per dataset beside the named one: metrics.json -> metrics.ml-100k.json
        _evaluate(args, name, output and output.with_name(f"{output.stem}.{name}{output.suffix}"))
    return 0


def _evaluate(args: argparse.Namespace, dataset_name: str, output) -> int:
    """Evaluate and print the rows of one dataset (the whole command for a single dataset)."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation.baselines import baseline_scorer, make_baseline
    from rl4rec_core.evaluation.bootstrap import format_intervals, paired_intervals
    from rl4rec_core.metrics import summarize
    from rl4rec_core.evaluation.policy_eval import select_users
    from rl4rec_core.evaluation.ranking import format_table, split_ranks, write_metrics

    dataset = load_dataset(dataset_name)
    split = dataset.split(args.split)
    rows: dict[str, dict[str, float]] = {}
    extra: dict = {"ranks": {}}
    names = list(BASELINES) if "all" in (args.baseline or []) else list(dict.fromkeys(args.baseline or []))
    users = select_users(len(split), args.max_users if (args.checkpoint or args.policy) else None)
    for name in names:
        scorer = make_baseline(name, dataset, emb_model=args.emb_model, emb_type=args.emb_type)
        # the policies' users, so that every row pairs up with every other
        ranks = split_ranks(scorer, split, batch_size=args.batch_size)[torch.as_tensor(users)]
        rows[name] = {**summarize(ranks, tuple(sorted(set(args.ks)))), "users": int(len(ranks)),
                      "scorer": baseline_scorer(scorer)}
        extra["ranks"][name] = ranks.tolist()
    if args.checkpoint or args.policy:
        policy_rows, policy_extra = _policy_rows(args, dataset)
        rows.update(policy_rows)
        extra = {**policy_extra, "ranks": {**extra["ranks"], **policy_extra["ranks"]}}
    print(f"{dataset_name} · {args.split} split · full ranking over {dataset.num_items} items, history masked")
    print(format_table(rows))
    if args.compare:
        pairs = [_pair(spec, extra["ranks"]) for spec in args.compare]
        extra["intervals"] = paired_intervals(extra["ranks"], pairs)
        print(f"\nPaired differences over the same {len(users)} users, bootstrap 95% intervals:")
        print(format_intervals(extra["intervals"]))
    if output:
        path = write_metrics(output, rows, dataset=dataset_name, split=args.split, ks=list(args.ks), **extra)
        print(f"wrote {path}")
    return 0
