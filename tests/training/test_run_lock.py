"""One writer per run folder (``rl4rec_core/training/run_lock.py``): two real ``rl4rec train`` processes on
one folder, a ``--resume`` while the run still writes, two real ``rl4rec sft`` processes (the second with
``--overwrite``), a stale lock left by ``kill -9``, and the lock's own rules (another host, a file that is no
lock, release on an error)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.training.run_lock import LOCK_NAME, RunLock


def _train_cmd(name: str, run, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "train", "--dataset_name", name, "--policy", "dummy",
            "--num_steps", str(steps), "--batch_size", "8", "--group_size", "4", "--save_every", "5",
            "--log_every", "50", "--service", "local", "--no_progress", "--checkpoint_dir", str(run), *extra]


@pytest.fixture
def tiny_run(rl4rec_dirs):
    """The tiny dataset with its MiniLM item embeddings, as `rl4rec train --service local` needs them."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from tests.helpers.tiny_recdata import write_tiny_dataset

    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    return name


def _steps(log) -> list[int]:
    return [json.loads(line)["step"] for line in log.read_text().splitlines()]


def _wait_for_writer(first: subprocess.Popen, run) -> None:
    """Until the first process holds the lock and has logged a step (or has ended)."""
    while first.poll() is None and not ((run / LOCK_NAME).exists() and (run / "training_log.jsonl").exists()):
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second started: make it longer"


def _one_writer(cmd: list[str], late_extras: tuple[tuple[str, ...], ...], run) -> None:
    """Start ``cmd``; while it writes ``run``, start ``cmd`` plus each of ``late_extras``; then stop the first
    with Ctrl-C (SIGINT). Each late one must exit 2 with one line naming the first's PID and change nothing;
    the first's log holds each of its steps exactly once, and the lock is gone with it."""
    env = os.environ.copy()
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    late: list[subprocess.Popen] = []
    try:
        _wait_for_writer(first, run)
        late = [subprocess.Popen([*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for extra in late_extras]
        answers = [(p.communicate(timeout=300)[1], p.returncode)[::-1] for p in late]
        assert first.poll() is None, "the first run ended before the others were refused"
        logged = len(_steps(run / "training_log.jsonl"))
        first.send_signal(signal.SIGINT)
        err = first.communicate(timeout=120)[1]
    finally:
        for proc in (first, *late):  # one not refused would run its 100,000 steps
            if proc.poll() is None:
                proc.kill()
    assert first.returncode == 130 and "interrupted" in err, err[-2000:]
    for code, stderr in answers:
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
        assert f"is being written by another run: pid {first.pid} on {socket.gethostname()}" in errors[0]
        assert "Fix:" in errors[0]
    steps = _steps(run / "training_log.jsonl")
    assert steps == list(range(len(steps))) and len(steps) >= logged > 0  # nothing deleted, nothing twice
    assert not (run / LOCK_NAME).exists(), "the lock outlived its run"


@pytest.mark.slow
def test_a_second_writer_is_refused_and_the_first_runs_intact(tiny_run, tmp_path):
    """Two `rl4rec train` on one fresh folder, and a `--resume` while the first still writes: both late ones
    are refused naming the first, which runs on intact until its Ctrl-C."""
    _one_writer(_train_cmd(tiny_run, tmp_path / "run", 100_000), ((), ("--resume",)), tmp_path / "run")


def _sft_cmd(name: str, lm: str, run) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "sft", "--dataset_name", name, "--policy_model", lm, "--sft_steps",
            "100000", "--sft_batch_size", "4", "--log_every", "100000", "--no_progress", "--checkpoint_dir", str(run)]


@pytest.mark.slow
def test_a_second_sft_on_one_folder_is_refused_and_clears_nothing(rl4rec_dirs, tiny_lm, tmp_path):
    """`rl4rec sft` holds the lock as `rl4rec train` does: a second `rl4rec sft` on the folder of a running one,
    plain or with --overwrite (which would delete the first's log and checkpoints), is refused naming the first
    and deletes nothing."""
    from tests.helpers.tiny_recdata import write_tiny_dataset

    name = write_tiny_dataset(rl4rec_dirs["data"])
    _one_writer(_sft_cmd(name, tiny_lm, tmp_path / "sft"), ((), ("--overwrite",)), tmp_path / "sft")


@pytest.mark.slow
def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(tiny_run, tmp_path):
    run, env = tmp_path / "run", os.environ.copy()
    first = subprocess.Popen(_train_cmd(tiny_run, run, 400), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _wait_for_writer(first, run)
    while first.poll() is None and not (run / "checkpoint_step_5").is_dir():
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == first.pid  # kill -9 leaves the lock behind
    done = subprocess.run(_train_cmd(tiny_run, run, 12, "--resume"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"taking over the stale lock of {run}: its writer, pid {first.pid} on" in done.stderr
    assert not (run / LOCK_NAME).exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(folder, **holder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                                "started": time.time(), **holder}))


def test_a_live_holder_is_named_and_the_lock_is_left_alone(tmp_path):
    with RunLock(tmp_path / "run") as held:
        before = held.path.read_text()
        with pytest.raises(ConfigError) as e:
            RunLock(tmp_path / "run").acquire()
        assert held.path.read_text() == before
    text = str(e.value)
    assert "\n" not in text and f"pid {os.getpid()} on {socket.gethostname()}" in text and "Fix:" in text
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path, caplog):
    pid = _dead_pid()
    _plant(tmp_path, pid=pid, token="old")
    caplog.set_level(logging.WARNING)
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert any(f"pid {pid} on {socket.gethostname()}" in r.getMessage() and "stale" in r.getMessage()
               for r in caplog.records)


def test_a_pid_reused_by_a_later_process_is_stale(tmp_path):
    """The PID runs, but started after the lock was taken: another process has that PID now."""
    _plant(tmp_path, pid=os.getppid(), pid_started=1.0, token="old")
    with RunLock(tmp_path):
        pass


def test_our_own_pid_without_our_lock_is_a_leftover(tmp_path):
    """A container restarts and the new process gets the PID the killed one had."""
    _plant(tmp_path, token="from-an-earlier-life")
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["token"] == lock.token


def test_a_holder_on_another_host_is_refused_with_the_way_out(tmp_path):
    _plant(tmp_path, host="elsewhere.example", pid=_dead_pid(), token="x")
    with pytest.raises(ConfigError, match=f"on another machine.*delete {tmp_path / LOCK_NAME}"):
        RunLock(tmp_path).acquire()


@pytest.mark.parametrize("content", [b"", b"\x00\xff garbage", b"[1, 2]", b"[" * 100_000])
def test_a_lock_rl4rec_did_not_write_is_refused_not_deleted(tmp_path, content):
    (tmp_path / LOCK_NAME).write_bytes(content)
    with pytest.raises(ConfigError, match="is not a lock rl4rec wrote"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_bytes() == content


def test_the_lock_is_released_when_training_fails(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), RunLock(tmp_path):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    assert not list(tmp_path.glob(f".{LOCK_NAME}.*"))  # nor its temporary file


def test_release_never_removes_another_writers_lock(tmp_path):
    lock = RunLock(tmp_path).acquire()
    _plant(tmp_path, token="someone-else")  # e.g. the folder was cleaned by hand and another run started
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == "someone-else"


def test_a_checkpoint_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        RunLock(tmp_path / "file").acquire()
    with pytest.raises(ConfigError, match="a part of the path is a file"):
        RunLock(tmp_path / "file" / "run").acquire()
