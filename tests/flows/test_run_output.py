"""What ``rl4rec run --quick`` prints when its output is not a terminal (a log file, CI): no colour codes, no
line twice, the summary and little else. A real run: local Ray, a background Prefect server, MLflow SQLite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from tests.helpers.tiny_recdata import write_tiny_dataset

ANSI = re.compile(r"\x1b\[")


@pytest.mark.slow
def test_quick_run_off_a_terminal_prints_the_summary_and_little_else(rl4rec_dirs, tmp_path):
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_API_", "RAY_ADDRESS", "MLFLOW_TRACKING_URI"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")  # the background server's database, not ~/.prefect
    cmd = [sys.executable, "-m", "flows.cli", "run", "--quick", "--dataset_name", "tiny-ml", "--num_steps", "4",
           "--batch_size", "8", "--save_every", "2", "--eval_users", "0"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=900)
    text = out.stdout
    (tmp_path / "run_output.txt").write_text(text)  # what it printed, to read after a failure
    assert out.returncode == 0, text[-4000:]
    lines = text.splitlines()
    assert "rl4rec pipeline finished: tiny-ml, dummy policy, 4 steps" in lines
    assert not ANSI.search(text), [line for line in lines if ANSI.search(line)][:5]
    repeated = {line: n for line, n in Counter(line for line in lines if line.strip()).items() if n > 1}
    assert not repeated, repeated
    assert len(lines) <= 40, text
    assert not any("%|" in line for line in lines), "a progress bar off a terminal"
    assert any(line.startswith("Ray:") and "token authentication" in line for line in lines)
