"""The ``rl4rec`` command line. Each sub-command lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from rl4rec_core.errors import Rl4recError

# module names under rl4rec_core.cli, in the order they appear in --help
CORE_COMMANDS = ("data", "embed", "tune_retrieval", "evaluate", "serve", "sft", "train", "assets")


def build_parser(extra: Sequence[Callable[[argparse._SubParsersAction], None]] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rl4rec",
        description="Train LLM recommenders with reinforcement learning.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CORE_COMMANDS:
        importlib.import_module(f"rl4rec_core.cli.{name}").register(sub)
    for register in extra:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, extra=()) -> int:
    parser = build_parser(extra)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Rl4recError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
