"""What ``rl4rec run`` prints: progress on a terminal, warnings, the summary; ``-v`` shows every line.

Without ``-v`` one handler on the root logger prints our own INFO lines and every library's warnings in
one format (``HH:MM:SS LEVEL logger: message``); MLflow's and Ray's own handlers are folded into it.
Ray workers get the same format and only warnings on their console (their INFO logs still reach the
Prefect API), and no progress bars (``rl4rec_core.paths.worker_env``). Off a terminal nothing is coloured.
Everything here is set through the libraries' documented switches (environment variables read when
they configure logging), so it has to happen before Prefect, Ray or MLflow are imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from rl4rec_core.cli import LOG_DATEFMT, LOG_FORMAT

# our loggers: their INFO lines are part of a run's output
OWN = ("rl4rec_core", "flows", "tasks", "__main__")
# loggers with a handler of their own (and their own format); folded into the root handler
OWN_HANDLERS = ("mlflow", "ray")
# Ray says this itself at start-up; the summary says which mode the run used (flows.run_cli)
DROPPED = ("Token authentication is",)


def logging_env(verbose: bool, tty: bool) -> dict[str, str]:
    """Prefect's logging config (PREFECT_LOGGING_<path>), Ray's and MLflow's switches, for this process
    and its Ray workers (tasks.runtime forwards them)."""
    env = {
        # Prefect's console formats, as ours: one timestamp format in every process
        "PREFECT_LOGGING_FORMATTERS_STANDARD_FORMAT": LOG_FORMAT,
        "PREFECT_LOGGING_FORMATTERS_STANDARD_FLOW_RUN_FMT": "%(asctime)s %(levelname)s flow run %(flow_run_name)s: %(message)s",
        "PREFECT_LOGGING_FORMATTERS_STANDARD_TASK_RUN_FMT": "%(asctime)s %(levelname)s task run %(task_run_name)s: %(message)s",
        "PREFECT_LOGGING_FORMATTERS_STANDARD_DATEFMT": LOG_DATEFMT,
    }
    if not tty:
        env |= {"PREFECT_LOGGING_COLORS": "false", "RAY_COLOR_PREFIX": "0", "NO_COLOR": "1"}
    if not verbose:
        # the console handler only: the API handler still sends INFO lines to the Prefect UI
        env |= {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING", "MLFLOW_LOGGING_LEVEL": "WARNING"}
    return env


def prepare(verbose: bool) -> None:
    """Set :func:`logging_env` (a value the user set wins) before Prefect, Ray and MLflow are imported."""
    for key, value in logging_env(verbose, sys.stdout.isatty()).items():
        os.environ.setdefault(key, value)
    if not verbose:
        os.environ["RL4REC_QUIET"] = "1"  # read by rl4rec_core.paths.worker_env: no progress bars in workers


class _Quiet(logging.Filter):
    """Our INFO lines and everyone's warnings, minus what the summary says instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and not record.name.startswith(OWN):
            return False
        return not any(record.getMessage().startswith(d) for d in DROPPED)


def unify(verbose: bool) -> None:
    """After the libraries are imported: their own handlers go, every record goes through the root's one."""
    root = logging.getLogger()
    formatter = logging.Formatter(LOG_FORMAT, LOG_DATEFMT)
    for handler in root.handlers:
        handler.setFormatter(formatter)
        if not verbose:
            handler.addFilter(_Quiet())
    for name in OWN_HANDLERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True
    if not verbose:
        from ray.util.debug import log_once

        log_once("log_dedup_warning")  # Ray's "deduplicates logs by default ..." hint: counted as shown


@contextlib.contextmanager
def task_bar(enabled: bool = True):
    """On a terminal, one progress bar of the flow's Ray tasks (done / submitted, the ones running)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from tqdm import tqdm

    from tasks import runtime

    bar = tqdm(total=0, desc="pipeline tasks", unit="task", file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc}: {n}/{total} done [{elapsed}] {postfix}")
    running: list[str] = []

    def on_task(name: str, event: str) -> None:
        if event == "submitted":
            bar.total += 1
            running.append(name)
        else:
            running.remove(name)
            bar.update(1)
        bar.set_postfix_str(", ".join(running) or "")

    runtime.on_task_event = on_task
    try:
        yield bar
    finally:
        runtime.on_task_event = None
        bar.close()
