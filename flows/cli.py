"""Console entry point ``rl4rec``: the core sub-commands plus ``rl4rec run``, the pipeline, which needs Prefect.

Nothing is imported here beyond the command table: ``flows.run_cli`` (and Prefect, Ray, MLflow with it)
loads only when ``rl4rec run`` is the chosen command.
"""

from __future__ import annotations

import sys

from rl4rec_core.cli import main as core_main

RUN_COMMAND = {
    "run": ("flows.run_cli",
            "run the whole pipeline (data, embeddings, retrieval actor, RL training, evaluation, registry)"),
}


def main(argv=None) -> int:
    return core_main(argv, extra=RUN_COMMAND)


if __name__ == "__main__":
    sys.exit(main())
