"""``rl4rec train`` and ``rl4rec evaluate`` with a base (the fused recipe) as a user runs them: a dummy policy
trained on fused rewards with SASRec's candidates in the prompt, then judged fused with SASRec beside SASRec alone."""

from __future__ import annotations

import json

from rl4rec_core.cli import main
from rl4rec_core.data import load_dataset
from rl4rec_core.embeddings.files import generate_item_embeddings
from tests.helpers.tiny_recdata import write_tiny_dataset


def test_train_and_evaluate_with_the_sasrec_base(rl4rec_dirs, tmp_path, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    fused = ["--base", "sasrec", "--num_candidates", "4", "--emb_backend", "sentence-transformers"]
    ckpt = tmp_path / "run"
    # no SASRec yet: one line naming the command that trains it, before anything runs
    assert main(["train", "--dataset_name", name, "--use_dummy", "--num_steps", "2", "--service", "local",
                 "--checkpoint_dir", str(ckpt), *fused]) == 2
    assert "rl4rec sasrec --dataset_name" in capsys.readouterr().err and not (ckpt / "checkpoint_final").exists()
    assert main(["sasrec", "--dataset_name", name, "--sasrec_max_epochs", "2", "--sasrec_hidden", "16"]) == 0
    assert main(["train", "--dataset_name", name, "--use_dummy", "--num_steps", "2", "--batch_size", "8",
                 "--group_size", "4", "--save_every", "2", "--service", "local", "--no_progress",
                 "--checkpoint_dir", str(ckpt), *fused]) == 0
    log = [json.loads(line) for line in (ckpt / "training_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(0 <= s["frac_zero_spread"] <= 1 and s["names_candidate"] == 1.0 for s in log)
    capsys.readouterr()

    out_json = tmp_path / "metrics.json"
    assert main(["evaluate", "--dataset", name, "--baseline", "popularity", "sasrec", "--checkpoint",
                 str(ckpt / "checkpoint_final"), "--labels", "grpo", "--compare", "grpo:sasrec", "--output",
                 str(out_json), *fused[:4]]) == 0
    rows = json.loads(out_json.read_text())["results"]
    assert {"grpo", "grpo text", "untrained", "untrained text", "sasrec", "popularity"} <= set(rows)
    users = load_dataset(name).num_users
    assert rows["grpo"]["users"] == rows["sasrec"]["users"] == users and rows["grpo"]["gamma"] >= 0
    # an untrained policy named by the policy flags shows the candidates too (the template follows the base)
    untrained_json = tmp_path / "untrained.json"
    assert main(["evaluate", "--dataset", name, "--policy", "dummy", "--baselines", "--output", str(untrained_json),
                 *fused[:4]]) == 0
    rows = json.loads(untrained_json.read_text())["results"]
    assert set(rows) == {"policy:dummy", "policy:dummy text"} and rows["policy:dummy"]["users"] == users
