"""``rl4rec embed``: precompute item embeddings (the original's ``scripts/generate_embeddings.py``)."""

from __future__ import annotations

import argparse
import time

from rl4rec_core.devices import DEVICE_HELP
from rl4rec_core.embeddings.encoders import BACKENDS, DEFAULT_EMB_MODEL


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embed every item's text into data_emb/{dataset}_{emb_type}_{model}.pt",
        description="Embed every item's text with a sentence-embedding model and write "
        "data_emb/{dataset}_{emb_type}_{model}.pt (float32 [num_items, dim]) plus a JSON sidecar. "
        "Re-running with the same items, model and template reuses the file.",
    )
    p.add_argument("--dataset", required=True, help="prepared dataset name (rl4rec data prepare --dataset ...)")
    p.add_argument(
        "--emb_model",
        "--emb_model_name",
        dest="emb_model",
        default=DEFAULT_EMB_MODEL,
        help=f"model name or folder (default: {DEFAULT_EMB_MODEL}, packaged, works offline; "
        "hub names such as mixedbread-ai/mxbai-embed-large-v1 need the hub)",
    )
    p.add_argument("--emb_type", default="item", help="label in the file name (default: item)")
    p.add_argument(
        "--emb_backend", choices=BACKENDS, default="auto", help="auto = vLLM when installed, else sentence-transformers"
    )
    p.add_argument("--template", default="auto", help="item text template: auto, movielens, amazon, title or a format string")
    p.add_argument("--batch_size", type=int, default=64, help="texts per encoder batch (default: 64)")
    p.add_argument("--device", default="cpu", help=f"torch device of the encoder: {DEVICE_HELP} (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="re-encode even when an up-to-date file exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.devices import resolve_device
    from rl4rec_core.embeddings.files import generate_item_embeddings, load_item_embeddings

    device = str(resolve_device(args.device))  # also when the file is reused: a wrong flag is reported at once
    start = time.perf_counter()
    path = generate_item_embeddings(
        args.dataset,
        emb_model=args.emb_model,
        emb_type=args.emb_type,
        backend=args.emb_backend,
        template=args.template,
        batch_size=args.batch_size,
        force=args.force,
        device=device,
    )
    emb, meta = load_item_embeddings(args.dataset, args.emb_type, args.emb_model)
    print(
        f"✓ {path}: {meta['num_items']} items x {meta['dim']} dims, model {meta['model_name']} "
        f"({meta['backend']}), template {meta['template']!r}, {time.perf_counter() - start:.1f}s"
    )
    return 0
