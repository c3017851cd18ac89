"""`rl4rec sasrec`: trains the base recommender into the stored file, prints one summary line (no bars into a
pipe), reuses an up-to-date model, retrains with --overwrite; bad flags are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rl4rec_core.cli import main
from tests.helpers.sasrec_data import fast_flags

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_name(rl4rec_dirs):
    from tests.helpers.tiny_recdata import write_tiny_dataset

    return write_tiny_dataset(rl4rec_dirs["data"])


def test_a_real_rl4rec_sasrec_process_trains_stores_and_prints_one_line(tiny_name, rl4rec_dirs):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("TQDM_DISABLE", None)
    proc = subprocess.run([sys.executable, "-m", "rl4rec_core", "sasrec", "--dataset_name", tiny_name, *fast_flags()],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    record = json.loads((rl4rec_dirs["emb"] / f"{tiny_name}_sasrec.json").read_text())
    assert len(lines) == 1 and lines[0].startswith(f"✓ sasrec {tiny_name} (trained): {record['epochs']} epochs, "
                                                   f"best epoch {record['best_epoch']}, valid ndcg@10 "
                                                   f"{record['valid_ndcg10']:.4f} hit@10 {record['valid_hit10']:.4f}")
    assert lines[0].endswith(f"-> {rl4rec_dirs['emb'] / f'{tiny_name}_sasrec.pt'}")
    assert "\r" not in proc.stderr and "sasrec epochs" not in proc.stderr  # a pipe gets no progress bar


def test_a_second_run_reuses_and_overwrite_retrains(tiny_name, rl4rec_dirs, capsys, one_thread):
    assert main(["sasrec", "--dataset_name", tiny_name, *fast_flags()]) == 0
    first = json.loads((rl4rec_dirs["emb"] / f"{tiny_name}_sasrec.json").read_text())
    assert "(trained)" in capsys.readouterr().out
    assert main(["sasrec", "--dataset_name", tiny_name, *fast_flags()]) == 0
    assert "(reused)" in capsys.readouterr().out
    assert json.loads((rl4rec_dirs["emb"] / f"{tiny_name}_sasrec.json").read_text())["created"] == first["created"]
    # other settings are another model: trained again, as --overwrite does
    assert main(["sasrec", "--dataset_name", tiny_name, *fast_flags(), "--sasrec_seed", "4"]) == 0
    assert "(trained)" in capsys.readouterr().out
    assert main(["sasrec", "--dataset_name", tiny_name, *fast_flags(), "--sasrec_seed", "4", "--overwrite"]) == 0
    assert "(trained)" in capsys.readouterr().out


@pytest.mark.parametrize("flags, says", [
    (["--sasrec_hidden", "10", "--sasrec_heads", "3"], "sasrec_hidden=10 is not divisible by sasrec_heads=3"),
    (["--sasrec_learning_rate", "nan"], "sasrec_learning_rate must be a finite number"),
    (["--dataset_name", "no-such-data"], "dataset 'no-such-data' is not prepared"),
])
def test_bad_flags_and_missing_data_are_one_line(rl4rec_dirs, capsys, flags, says):
    assert main(["sasrec", *flags]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in err, err
