"""Console entry point ``rl4rec``: the core sub-commands plus the ones that need Prefect or MLflow:
``rl4rec run`` (the pipeline) and ``rl4rec ab`` (the offline A/B report, logged to MLflow).

Nothing is imported here beyond the command table: ``flows.run_cli`` / ``flows.ab_cli`` (and Prefect, Ray,
MLflow with them) load only when that command is the chosen one.
"""

from __future__ import annotations

import sys

from rl4rec_core.cli import main as core_main

RUN_COMMAND = {
    "run": ("flows.run_cli",
            "run the whole pipeline (data, embeddings, retrieval actor, RL training, evaluation, registry)"),
}
AB_COMMAND = {
    "ab": ("flows.ab_cli", "offline A/B report of two checkpoints, registered models or baselines on the same users"),
}
# the commands flows add to rl4rec_core.cli.COMMANDS, as that table (module, one-line help)
EXTRA_COMMANDS = {**RUN_COMMAND, **AB_COMMAND}


def main(argv=None) -> int:
    return core_main(argv, extra=EXTRA_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
