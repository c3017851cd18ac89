"""``rl4rec data prepare|info``: turn raw files into the prepared tables and show what is there."""

from __future__ import annotations

import argparse

from rl4rec_core.data import FORMATS, load_dataset, prepare_dataset, read_meta
from rl4rec_core.data.tables import UNKNOWN_ITEM_POLICIES
from rl4rec_core.paths import dataset_dir
from rl4rec_core.settings import DEFAULT_ENCODING


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare datasets and inspect them")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    prep = sub.add_parser("prepare", help="read raw files (or fetch ml-100k) and write the prepared tables")
    prep.add_argument("--dataset", required=True, help="dataset name = output folder under the data dir")
    prep.add_argument("--format", default="auto", choices=FORMATS, help="input layout (default: detect)")
    prep.add_argument("--source", help="folder (or sequential_data.txt) with the raw data; not needed for ml-100k")
    prep.add_argument("--meta", help="item metadata JSON for the amazon layout (default: looked up beside --source)")
    prep.add_argument("--unknown-items", default="drop", choices=UNKNOWN_ITEM_POLICIES,
                      help="interactions with items missing from the metadata: drop them (counted) or stop")
    prep.add_argument("--encoding", default=DEFAULT_ENCODING,
                      help="text encoding of the raw files, e.g. latin-1, cp1252, utf-16 (default: %(default)s; "
                           "a byte-order mark is dropped)")
    prep.add_argument("--force", action="store_true", help="rebuild even if the dataset is already prepared")
    prep.set_defaults(func=run_prepare)

    info = sub.add_parser("info", help="print counts and sample item texts of a prepared dataset")
    info.add_argument("--dataset", required=True)
    info.set_defaults(func=run_info)


def _dropped(drops: dict) -> str:
    return ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in drops.items()) or "nothing"


def run_prepare(args: argparse.Namespace) -> int:
    reused = read_meta(args.dataset) is not None and not args.force
    folder = prepare_dataset(args.dataset, source=args.source, fmt=args.format, meta=args.meta,
                             force=args.force, unknown_items=args.unknown_items, encoding=args.encoding)
    meta = read_meta(args.dataset)
    c = meta["counts"]
    if reused:
        print(f"{args.dataset} is already prepared in {folder} (use --force to rebuild)")
    else:
        print(f"prepared {args.dataset} ({meta['format']}) from {meta['source']}")
    print(f"  users:        {c['users']:,}")
    print(f"  items:        {c['items']:,}")
    print(f"  interactions: {c['interactions']:,}")
    print(f"  dropped:      {_dropped(meta['dropped'])}")
    print(f"  output:       {folder}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    ds = load_dataset(args.dataset)
    lengths = ds.sequences["items"].map(len)
    meta = ds.meta
    print(f"dataset {ds.name} ({meta.get('format')}) in {dataset_dir(ds.name)}")
    print(f"  source:       {meta.get('source')}")
    print(f"  users:        {ds.num_users:,}")
    print(f"  items:        {ds.num_items:,}")
    print(f"  interactions: {ds.num_interactions:,}")
    print(f"  items/user:   min {lengths.min()}, median {int(lengths.median())}, max {lengths.max()}")
    print(f"  dropped:      {_dropped(meta.get('dropped', {}))}")
    print(f"  order:        {meta.get('order', '?')}")
    ties = meta.get("timestamp_ties")
    if ties:
        print(f"  same-second:  {ties['interactions']:,} interactions in {ties['groups']:,} (user, timestamp) groups; "
              f"{ties['users_whose_last_two_items_tie']:,} users' last two items tie")
    print(f"  item text:    {meta.get('item_text_template')} = {meta.get('item_text_format')!r}")
    texts = ds.item_texts()
    for i in range(min(3, len(texts))):
        print(f"  item {i}: {texts[i]}")
    return 0
