"""Console entry point ``rl4rec``: the core sub-commands plus the pipeline commands that need Prefect."""

from __future__ import annotations

import importlib
import sys

from rl4rec_core.cli import main as core_main

# modules under flows/ that add sub-commands with register(subparsers)
FLOW_COMMANDS = ("run_cli",)


def _registrars():
    out = []
    for name in FLOW_COMMANDS:
        try:
            out.append(importlib.import_module(f"flows.{name}").register)
        except ModuleNotFoundError as e:
            if e.name != f"flows.{name}":
                raise
    return out


def main(argv=None) -> int:
    return core_main(argv, extra=_registrars())


if __name__ == "__main__":
    sys.exit(main())
