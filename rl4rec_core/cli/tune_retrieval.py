"""``rl4rec tune-retrieval``: choose the hybrid scorer's settings on the validation split."""

from __future__ import annotations

import argparse

from rl4rec_core.devices import DEVICE_HELP
from rl4rec_core.embeddings.encoders import BACKENDS, DEFAULT_EMB_MODEL
from rl4rec_core.retrieval.tuning import DEFAULT_ALPHAS, DEFAULT_BETAS, DEFAULT_MS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune-retrieval",
        help="grid-search the hybrid scorer (prior weight beta, recent items m, query fusion alpha) on validation",
        description=(
            "score(q, i) = cos(q, e_i) + beta * log(1 + training interactions of i); the query may be fused "
            "with the user's last m items (weight alpha). beta and m are chosen with the echo+prior query; "
            "with --checkpoint, alpha is chosen on that policy's greedy validation texts. Only the "
            "validation split is read. The settings are written beside the item embeddings, and the "
            "retrieval service, rewards and evaluation use them."
        ),
    )
    a = p.add_argument
    a("--dataset", required=True, help="prepared dataset name")
    a("--emb_model", "--emb_model_name", dest="emb_model", default=DEFAULT_EMB_MODEL,
      help="embedding model of the item embeddings (default: %(default)s)")
    a("--emb_type", default="item")
    a("--checkpoint", default=None, help="policy checkpoint whose validation texts choose alpha (optional)")
    a("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS), help="beta grid (>= 0)")
    a("--ms", type=int, nargs="+", default=list(DEFAULT_MS), help="m grid (>= 1)")
    a("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS), help="alpha grid (>= 0), with --checkpoint")
    a("--device", default="cpu", help=f"policy and encoder for --checkpoint: {DEVICE_HELP} (default: %(default)s)")
    a("--emb_backend", choices=BACKENDS, default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.retrieval.tuning import tune_retrieval

    out = tune_retrieval(
        args.dataset, args.emb_model, args.emb_type, checkpoint=args.checkpoint, betas=args.betas, ms=args.ms,
        alphas=args.alphas, device=args.device, backend=args.emb_backend, progress=True,
    )
    v = out["validation"]
    echo = v["echo_prior"]
    print(f"{args.dataset} · valid split ({v['users']} users) · chosen by {v['metric']}")
    print(f"  echo+prior: beta={echo['beta']:g} m={echo['history_m']}  ndcg@10 {echo['ndcg@10']:.4f}  "
          f"hit@10 {echo['hit@10']:.4f}  mrr {echo['mrr']:.4f}")
    if "policy_fused" in v:
        pf = v["policy_fused"]
        print(f"  policy texts fused: alpha={pf['alpha']:g}  ndcg@10 {pf['ndcg@10']:.4f}  hit@10 {pf['hit@10']:.4f}")
    print(f"scorer: {out['scorer']}")
    print(f"✓ wrote {out['path']} (the retrieval service loads it at start)")
    return 0
