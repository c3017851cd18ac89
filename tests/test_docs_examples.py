"""The docs' examples run (issue 23): every ``python`` and ``bash`` block of README.md, docs/*.md and
deployments/README.md either runs here or carries ``<!-- no-run: reason -->`` in the document.

The examples run as a user runs them, in document order, in one temporary folder (the working directory, so
``data/``, ``data_emb/``, ``checkpoints/`` and ``mlruns/mlflow.db``, a real MLflow SQLite store, are its own):
shell blocks with bash, Python blocks in a fresh interpreter. ``ml-100k`` there is the tests' tiny dataset
(36 users, 24 real MovieLens movies) so that embedding, tuning, evaluation and training take seconds; only
``rl4rec data prepare`` prepares the real MovieLens-100k, in a folder of its own. The pipeline examples
(``rl4rec run --quick``, ``pipeline_flow(profile="quick")`` and the registered model's ``predict``) are slow
tests on the session's real Prefect API.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from flows.cli import EXTRA_COMMANDS
from rl4rec_core.cli import COMMANDS, lazy_parser
from tests.helpers.doc_examples import ROOT, examples, rl4rec_argv, shell_commands

ALL = examples()
RUNNABLE = [e for e in ALL if not e.no_run]
# blocks (by their first line) that need the whole pipeline: minutes on 2 cores, so slow tests
PIPELINE = ("rl4rec run --quick", "from tasks.registry import load_policy_by_alias",
            "from flows.pipeline import pipeline_flow")
# blocks that prepare the real MovieLens-100k: their own data folder, so ml-100k stays the tiny one elsewhere
OWN_DATA = ("rl4rec data prepare --dataset_name ml-100k",)
TIMEOUT_S = 900


def _first_line(example) -> str:
    return example.code.strip().splitlines()[0]


def _params():
    for e in RUNNABLE:
        marks = [pytest.mark.slow] if _first_line(e).startswith(PIPELINE) else []
        yield pytest.param(e, id=e.id, marks=marks)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The folder every example runs in, and its environment: the checkout first on the path, rl4rec's
    default locations (relative to the folder), the tiny dataset as ml-100k."""
    from tests.helpers.tiny_recdata import write_tiny_dataset

    folder = tmp_path_factory.mktemp("docs")
    write_tiny_dataset(folder / "data", "ml-100k")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RL4REC_DATA_DIR", "RL4REC_EMB_DIR", "RL4REC_CHECKPOINT_ROOT", "MLFLOW_",
                                "PREFECT_API_URL", "RAY_ADDRESS"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    return folder, env


def test_every_example_runs_or_says_why_not():
    assert len(ALL) >= 30 and len(RUNNABLE) >= 8
    for e in ALL:
        assert e.no_run is None or len(e.no_run) > 10, f"{e.id}: a no-run marker names its reason"


@pytest.mark.parametrize("example", [e for e in ALL if e.lang == "bash"], ids=lambda e: e.id)
def test_every_rl4rec_line_parses(example):
    """Run or not, every documented ``rl4rec`` command has only flags and values the command accepts."""
    commands = {**COMMANDS, **EXTRA_COMMANDS}
    for command in shell_commands(example.code):
        argv = rl4rec_argv(command)
        if argv is None:
            continue
        err = io.StringIO()
        try:
            with redirect_stderr(err):
                lazy_parser(argv, commands).parse_args(argv)
        except SystemExit as e:
            if e.code:
                pytest.fail(f"{example.id}: `{command}` does not parse: {err.getvalue().strip()}")


@pytest.mark.parametrize("example", list(_params()))
def test_example_runs(example, world, request):
    folder, env = world
    env = dict(env)
    if _first_line(example).startswith(OWN_DATA):
        env["RL4REC_DATA_DIR"] = str(folder / "movielens")
    if _first_line(example).startswith(PIPELINE):
        request.getfixturevalue("prefect_api")
        from prefect.settings import PREFECT_API_URL

        env["PREFECT_API_URL"] = PREFECT_API_URL.value()  # the session's real Prefect API
    argv = ([sys.executable, "-c", example.code] if example.lang == "python"
            else ["bash", "-e", "-o", "pipefail", "-c", example.code])
    out = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, f"{example.id} failed ({out.returncode}):\n{example.code}\n{out.stdout[-3000:]}" \
                                f"\n{out.stderr[-3000:]}"
