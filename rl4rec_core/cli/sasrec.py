"""``rl4rec sasrec``: train SASRec, the base recommender, and store it beside the item embeddings."""

from __future__ import annotations

import argparse

SETTINGS = {"run": ("dataset_name", "device"), "sasrec": None}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags

    p = subparsers.add_parser(
        "sasrec",
        help="train SASRec (the base recommender) with early stopping into data_emb/{dataset}_sasrec.pt",
        description=(
            "Train SASRec on the training histories, keep the epoch with the best validation NDCG@10 (stop "
            "after --sasrec_patience epochs without a gain), and write data_emb/{dataset}_sasrec.pt with its "
            "record ({dataset}_sasrec.json: settings, data digest, best epoch, validation metrics). A stored "
            "model for the same data and settings is reused; --overwrite trains again. The test split is "
            "never read."
        ),
    )
    add_settings_flags(p, SETTINGS)
    p.add_argument("--overwrite", action="store_true", help="train again even when an up-to-date model is stored")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.data import load_dataset
    from rl4rec_core.devices import resolve_device
    from rl4rec_core.recommenders import ensure_sasrec

    groups = groups_from_args(args, SETTINGS)
    run_settings, settings = groups["run"], groups["sasrec"]
    device = resolve_device(run_settings.device)
    for name in run_settings.datasets:
        record = ensure_sasrec(load_dataset(name), settings, overwrite=args.overwrite, progress=True, device=device)
        print(summary_line(record))
    return 0


def summary_line(record: dict) -> str:
    how = "reused" if record.get("reused") else "trained"
    return (f"✓ sasrec {record['dataset']} ({how}): {record['epochs']} epochs, best epoch {record['best_epoch']}, "
            f"valid ndcg@10 {record['valid_ndcg10']:.4f} hit@10 {record['valid_hit10']:.4f}, "
            f"{record['train_seconds']:.1f}s -> {record['path']}")
