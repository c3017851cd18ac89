"""Progress bars only on a terminal: commands whose output goes to a pipe (a log file, CI) print no
carriage-return redraws; on a terminal (a pseudo-terminal here) the bars stay.

The commands run as a user runs them, in a child process with stdout and stderr piped."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# a bar's redraw: a carriage return not ending a line (vLLM's CRLF log lines are lines, not bars)
REDRAW = re.compile(rb"\r(?!\n)")


def _env(dirs: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    env.update(RL4REC_DATA_DIR=str(dirs["data"]), RL4REC_EMB_DIR=str(dirs["emb"]),
               RL4REC_CHECKPOINT_ROOT=str(dirs["ckpt"]), PYTHONPATH=str(ROOT))
    return env


def _piped(args: list[str], env: dict[str, str], timeout: float = 600) -> bytes:
    """Everything ``args`` writes to stdout and stderr, both a pipe; fails on a non-zero exit."""
    proc = subprocess.run(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]
    return proc.stdout


def _on_terminal(args: list[str], env: dict[str, str], timeout: float = 600) -> bytes:
    """What ``args`` writes to stderr when stderr is a (pseudo-)terminal; stdout stays a pipe."""
    main, child = pty.openpty()
    # 24 x 120: a terminal of size 0 x 0 (a fresh pty's) gets bars of no width, drawn as nothing
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=child)
    os.close(child)
    out = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=timeout) == 0, out.decode(errors="replace")[-3000:]
    return bytes(out)


def _rl4rec(*args: str) -> list[str]:
    return [sys.executable, "-m", "rl4rec_core", *args]


@pytest.fixture
def tiny_name(rl4rec_dirs):
    from tests.helpers.tiny_recdata import write_tiny_dataset

    return write_tiny_dataset(rl4rec_dirs["data"])


def test_embed_draws_bars_on_a_terminal_only(rl4rec_dirs, tiny_name):
    env = _env(rl4rec_dirs)
    cmd = _rl4rec("embed", "--dataset", tiny_name, "--emb_backend", "sentence-transformers", "--force")
    piped = _piped(cmd, env)
    assert b"24 items x 384 dims" in piped  # it did embed
    assert not REDRAW.search(piped), piped.decode(errors="replace")
    # the same command on a terminal keeps its bars ("Loading weights", sentence-transformers' batches)
    shown = _on_terminal(cmd, env)
    assert REDRAW.search(shown) and b"Batches" in shown, shown.decode(errors="replace")


def test_sasrec_epoch_bar_follows_the_switch(tiny, monkeypatch, capfd):
    """The SASRec baseline asks for its epoch bar (``progress=True``); piped, it is not drawn."""
    from rl4rec_core.recommenders.sasrec_training import train_sasrec
    from rl4rec_core.settings import SASRecSettings
    from rl4rec_core.progress import quiet_when_piped

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    with open(os.devnull, "w") as not_a_terminal:
        assert quiet_when_piped(not_a_terminal) is False
    assert os.environ["TQDM_DISABLE"] == "1"
    train_sasrec(tiny.train_histories(), tiny.num_items,
                 SASRecSettings(sasrec_max_epochs=3, sasrec_hidden=8, sasrec_max_len=8), progress=True)
    err = capfd.readouterr().err
    assert "\r" not in err and "sasrec epochs" not in err


def test_a_user_setting_wins(monkeypatch):
    """``TQDM_DISABLE=0`` keeps the bars in a log file."""
    from rl4rec_core.progress import bars_wanted, quiet_when_piped

    monkeypatch.setenv("TQDM_DISABLE", "0")
    with open(os.devnull, "w") as not_a_terminal:
        assert quiet_when_piped(not_a_terminal) is True
    assert bars_wanted() and not bars_wanted(False)


@pytest.mark.slow
def test_train_evaluate_and_a_benchmark_print_no_bars_into_a_pipe(rl4rec_dirs, tiny_name, tmp_path):
    from tests.helpers.tiny_lm import make_tiny_lm

    env = _env(rl4rec_dirs) | {"RL4REC_EMB_BACKEND": "sentence-transformers"}
    ckpt = tmp_path / "run"
    commands = [
        _rl4rec("embed", "--dataset", tiny_name),
        _rl4rec("train", "--dataset_name", tiny_name, "--use_dummy", "--num_steps", "2", "--batch_size", "8",
                "--save_every", "1", "--service", "local", "--checkpoint_dir", str(ckpt)),
        # the policy's evaluation bar and SASRec's epoch bar
        _rl4rec("evaluate", "--dataset", tiny_name, "--split", "valid", "--baseline", "popularity", "sasrec",
                "--checkpoint", str(ckpt / "checkpoint_final")),
        # transformers' "Loading weights" bar
        [sys.executable, "benchmarks/bench_policy.py", "--model", make_tiny_lm(tmp_path / "lm"), "--repeats", "1",
         "--prompts", "2", "--group_size", "2", "--new_tokens", "4"],
    ]
    for cmd in commands:
        out = _piped(cmd, env)
        assert not REDRAW.search(out), (cmd, out.decode(errors="replace"))
