"""``rl4rec data prepare|info``: turn raw files into the prepared tables and show what is there."""

from __future__ import annotations

import argparse

# prepare: which data, from where, in which format and encoding; info: which data
PREPARE_SETTINGS = {"run": ("dataset_name", "source", "fmt", "encoding")}
INFO_SETTINGS = {"run": ("dataset_name",)}
SETTINGS = PREPARE_SETTINGS  # every settings flag of the command (the tests check them)


def register(subparsers: argparse._SubParsersAction) -> None:
    from rl4rec_core.cli.flags import add_settings_flags
    from rl4rec_core.settings import UNKNOWN_ITEM_POLICIES

    parser = subparsers.add_parser("data", help="prepare datasets and inspect them")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = sub.add_parser("prepare", help="read raw files (or fetch ml-100k) and write the prepared tables",
                          description="--fmt auto detects the layout; --source is not needed for ml-100k; "
                          "a byte-order mark is dropped whatever --encoding says.")
    add_settings_flags(prep, PREPARE_SETTINGS)
    prep.add_argument("--meta", help="item metadata JSON for the amazon layout (default: looked up beside --source)")
    prep.add_argument("--unknown-items", default="drop", choices=UNKNOWN_ITEM_POLICIES,
                      help="interactions with items missing from the metadata: drop them (counted) or stop")
    prep.add_argument("--force", action="store_true", help="rebuild even if the dataset is already prepared")
    prep.set_defaults(func=run_prepare)

    info = sub.add_parser("info", help="print counts and sample item texts of a prepared dataset")
    add_settings_flags(info, INFO_SETTINGS)
    info.set_defaults(func=run_info)


def _dropped(drops: dict) -> str:
    return ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in drops.items()) or "nothing"


def run_prepare(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.data import prepare_dataset, read_meta

    r = groups_from_args(args, PREPARE_SETTINGS)["run"]
    for name in r.datasets:  # RunSettings refuses --source with several
        _prepare(name, r, args, prepare_dataset, read_meta)
    return 0


def _prepare(name: str, r, args: argparse.Namespace, prepare_dataset, read_meta) -> None:
    reused = read_meta(name) is not None and not args.force
    folder = prepare_dataset(name, source=r.source, fmt=r.fmt, meta=args.meta, force=args.force,
                             unknown_items=args.unknown_items, encoding=r.encoding)
    meta = read_meta(name)
    c = meta["counts"]
    if reused:
        print(f"{name} is already prepared in {folder} (use --force to rebuild)")
    else:
        print(f"prepared {name} ({meta['format']}) from {meta['source']}")
    print(f"  users:        {c['users']:,}")
    print(f"  items:        {c['items']:,}")
    print(f"  interactions: {c['interactions']:,}")
    print(f"  dropped:      {_dropped(meta['dropped'])}")
    print(f"  output:       {folder}")


def run_info(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.data import load_dataset
    from rl4rec_core.paths import dataset_dir

    ds = load_dataset(groups_from_args(args, INFO_SETTINGS)["run"].dataset_name)
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
