"""Console entry point ``rl4rec``: the core sub-commands plus ``rl4rec run``, the pipeline, which needs Prefect."""

from __future__ import annotations

import sys

from rl4rec_core.cli import main as core_main


def main(argv=None) -> int:
    from flows import run_cli  # Prefect is imported when the command runs, not when this module is

    return core_main(argv, extra=[run_cli.register])


if __name__ == "__main__":
    sys.exit(main())
