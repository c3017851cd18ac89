"""``rl4rec embed``: precompute item embeddings (the original's ``scripts/generate_embeddings.py``)."""

from __future__ import annotations

import argparse
import time

SETTINGS = {"run": ("dataset_name", "device"), "retrieval": ("emb_model_name", "emb_type", "emb_backend")}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags

    p = subparsers.add_parser(
        "embed",
        help="embed every item's text into data_emb/{dataset}_{emb_type}_{model}.pt",
        description="Embed every item's text with a sentence-embedding model and write "
        "data_emb/{dataset}_{emb_type}_{model}.pt (float32 [num_items, dim]) plus a JSON sidecar. "
        "Re-running with the same items, model and template reuses the file. The default model "
        "(all-MiniLM-L6-v2) is packaged and works offline; hub names such as mixedbread-ai/mxbai-embed-large-v1 "
        "need the hub.",
    )
    add_settings_flags(p, SETTINGS)
    p.add_argument("--template", default="auto", help="item text template: auto, movielens, amazon, title or a format string")
    p.add_argument("--embed_batch_size", type=int, default=64, help="texts per encoder batch (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="re-encode even when an up-to-date file exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.devices import resolve_device
    from rl4rec_core.embeddings.files import generate_item_embeddings, load_item_embeddings

    groups = groups_from_args(args, SETTINGS)
    run_settings, r = groups["run"], groups["retrieval"]
    device = str(resolve_device(run_settings.device))  # also when the file is reused: a wrong flag is reported at once
    for name in run_settings.datasets:
        start = time.perf_counter()
        path = generate_item_embeddings(
            name, emb_model=r.emb_model_name, emb_type=r.emb_type, backend=r.emb_backend, template=args.template,
            batch_size=args.embed_batch_size, force=args.force, device=device,
        )
        emb, meta = load_item_embeddings(name, r.emb_type, r.emb_model_name)
        print(
            f"✓ {path}: {meta['num_items']} items x {meta['dim']} dims, model {meta['model_name']} "
            f"({meta['backend']}), template {meta['template']!r}, {time.perf_counter() - start:.1f}s"
        )
    return 0
