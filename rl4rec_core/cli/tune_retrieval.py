"""``rl4rec tune-retrieval``: choose the hybrid scorer's settings on the validation split."""

from __future__ import annotations

import argparse

SETTINGS = {"run": ("dataset_name", "device"), "retrieval": ("emb_model_name", "emb_type", "emb_backend")}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags
    from rl4rec_core.settings import ALPHA_GRID, BETA_GRID, M_GRID

    p = subparsers.add_parser(
        "tune-retrieval",
        help="grid-search the hybrid scorer (prior weight beta, recent items m, query fusion alpha) on validation",
        description=(
            "score(q, i) = cos(q, e_i) + beta * log(1 + training interactions of i); the query may be fused "
            "with the user's last m items (weight alpha). beta and m are chosen with the echo+prior query; "
            "with --checkpoint, alpha is chosen on that policy's greedy validation texts. Only the "
            "validation split is read. The settings are written beside the item embeddings, and the "
            "retrieval service, rewards and evaluation use them (--beta, --alpha, --history_m override them)."
        ),
    )
    add_settings_flags(p, SETTINGS)
    a = p.add_argument
    a("--checkpoint", default=None, help="policy checkpoint whose validation texts choose alpha (optional)")
    a("--betas", type=float, nargs="+", default=list(BETA_GRID), help="beta grid (>= 0)")
    a("--ms", type=int, nargs="+", default=list(M_GRID), help="m grid (>= 1)")
    a("--alphas", type=float, nargs="+", default=list(ALPHA_GRID), help="alpha grid (>= 0), with --checkpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.evaluation.policy_eval import checkpoint_texts
    from rl4rec_core.retrieval.tuning import tune_retrieval

    groups = groups_from_args(args, SETTINGS)
    run_settings, retrieval = groups["run"], groups["retrieval"]
    for name in run_settings.datasets:
        texts = (checkpoint_texts(name, args.checkpoint, "valid", run_settings.device, progress=True)
                 if args.checkpoint else None)
        out = tune_retrieval(name, retrieval, texts, text_source=args.checkpoint, betas=args.betas, ms=args.ms,
                             alphas=args.alphas, device=run_settings.device)
        _print(name, out)
    return 0


def _print(name: str, out: dict) -> None:
    v = out["validation"]
    echo = v["echo_prior"]
    print(f"{name} · valid split ({v['users']} users) · chosen by {v['metric']}")
    print(f"  echo+prior: beta={echo['beta']:g} m={echo['history_m']}  ndcg@10 {echo['ndcg@10']:.4f}  "
          f"hit@10 {echo['hit@10']:.4f}  mrr {echo['mrr']:.4f}")
    if "policy_fused" in v:
        pf = v["policy_fused"]
        print(f"  policy texts fused: alpha={pf['alpha']:g}  ndcg@10 {pf['ndcg@10']:.4f}  hit@10 {pf['hit@10']:.4f}")
    print(f"scorer: {out['scorer']}")
    print(f"✓ wrote {out['path']} (the retrieval service loads it at start)")
