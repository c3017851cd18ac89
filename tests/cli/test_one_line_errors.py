"""Issue 22, part 5: faults and bad flags that ended in a traceback (or after all the work) now end in one
line naming the cause and the fix, before any work where the flag alone is wrong; checkpoints already
written survive a failed write."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rl4rec_core.cli import main
from rl4rec_core.checkpoints import list_checkpoints, verify_checkpoint
from tests.helpers.limits import file_size_limit, permissions_apply


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.fixture
def tiny_name(rl4rec_dirs):
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from tests.helpers.tiny_recdata import write_tiny_dataset

    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    return name


def _train(name: str, run, *extra: str) -> list[str]:
    return ["train", "--dataset_name", name, "--policy", "dummy", "--num_steps", "2", "--batch_size", "8",
            "--group_size", "4", "--save_every", "1", "--service", "local", "--no_progress", "--checkpoint_dir",
            str(run), *extra]


@pytest.mark.parametrize("flags, says", [
    (["--seed", str(2**64 + 1)], "seed must be at most 2**32-1"),
    (["--learning_rate", "inf"], "learning_rate must be a finite number, got inf"),
    (["--kl_coef", "nan"], "kl_coef must be a finite number, got nan"),
    (["--clip_eps", "nan"], "clip_eps must be in (0, 1), got nan"),
    (["--temperature", "inf"], "temperature must be a finite number, got inf"),
])
def test_numbers_no_rng_or_optimiser_takes_are_refused_before_any_work(rl4rec_dirs, capsys, flags, says):
    assert main(["train", "--policy", "dummy", "--service", "local", *flags]) == 2
    captured = capsys.readouterr()
    assert says in _one_line(captured.err) and "Reward source" not in captured.out


def test_a_checkpoint_dir_that_is_a_file(tiny_name, tmp_path, capsys):
    (tmp_path / "run").write_text("not a folder")
    assert main(_train(tiny_name, tmp_path / "run")) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"--checkpoint_dir {tmp_path / 'run'} is a file, not a folder" in line and "Fix:" in line
    assert (tmp_path / "run").read_text() == "not a folder"


def test_a_read_only_checkpoint_folder(tiny_name, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        done = subprocess.run([sys.executable, "-m", "flows.cli", *_train(tiny_name, run)], env=os.environ.copy(),
                              capture_output=True, text=True, preexec_fn=permissions_apply, timeout=300)
    finally:
        run.chmod(0o755)
    line = _one_line(done.stderr)
    assert done.returncode == 2 and f"permission denied writing to {run}" in line and "Fix:" in line
    assert list(run.iterdir()) == []


def test_the_file_size_limit_while_checkpointing_keeps_the_older_checkpoints(tiny_name, tmp_path):
    """`ulimit -f` (RLIMIT_FSIZE) reached by torch.save of a checkpoint: one line naming the limit, exit 2,
    and every checkpoint written before still verifies (before: `RuntimeError: [enforce fail at
    inline_container.cc...]` traceback)."""
    run = tmp_path / "run"
    assert main(_train(tiny_name, run)) == 0
    before = {p.name for _, p in list_checkpoints(run)}
    done = subprocess.run([sys.executable, "-m", "flows.cli", *_train(tiny_name, run, "--resume", "--num_steps", "4")],
                          env=os.environ.copy(), capture_output=True, text=True, preexec_fn=file_size_limit(8192),
                          timeout=300)
    line = _one_line(done.stderr)
    assert done.returncode == 2 and "could not write checkpoint checkpoint_step_3" in line, line
    assert "file-size limit (ulimit -f)" in line and "Fix:" in line
    assert {p.name for _, p in list_checkpoints(run)} == before
    for _, path in list_checkpoints(run):
        verify_checkpoint(path)
    assert not (run / "run.lock").exists()


def test_evaluate_output_that_is_a_folder_is_refused_before_evaluating(tiny_name, tmp_path, capsys):
    assert main(["evaluate", "--dataset", tiny_name, "--baseline", "popularity", "--output", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"--output {tmp_path} is a folder" in _one_line(captured.err)
    assert "full ranking" not in captured.out  # nothing was evaluated


def test_serve_with_an_empty_actor_name(capsys):
    assert main(["serve", "--actor_name", ""]) == 2
    assert "--actor_name '' / --namespace 'rl4rec': neither may be empty" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("flags, says", [
    (["--model_name", "team/rl4rec"], "--model_name gives the registered model name 'team/rl4rec', which MLflow "
                                      "refuses"),
    (["--experiment", ""], "experiment is empty"),
    (["--checkpoint_dir", "FILE"], "is a file, not a folder"),
])
def test_run_quick_with_a_bad_name_fails_before_any_server_starts(rl4rec_dirs, tmp_path, flags, says):
    (tmp_path / "FILE").write_text("x")
    flags = [str(tmp_path / "FILE") if f == "FILE" else f for f in flags]
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--quick", *flags], cwd=tmp_path,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    # before: the whole pipeline ran (80-136 s), then an MlflowException traceback
    assert done.returncode == 2 and says in _one_line(done.stderr), done.stderr[-2000:]
    assert "Prefect" not in done.stdout and not (tmp_path / "mlruns").exists()
