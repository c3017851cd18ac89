"""``rl4rec ab`` (``flows/ab_cli.py``) as a user runs it, through the console entry point ``flows.cli.main``: two
real dummy-policy checkpoints of the tiny dataset, a baseline, a registered model, and the SPECs, datasets and
splits it refuses."""

from __future__ import annotations

import json

import pytest

from flows.cli import main
from tasks import tracking as mt
from tests.helpers.embeddings import data_dirs


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    """Tiny dataset + MiniLM embeddings + a 4-step dummy run (checkpoint_step_2, checkpoint_final)."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from tests.helpers.tiny_recdata import write_tiny_dataset

    root = tmp_path_factory.mktemp("ab")
    with data_dirs(root):
        name = write_tiny_dataset(root / "data")
        generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
        assert main(["train", "--dataset_name", name, "--use_dummy", "--num_steps", "4", "--batch_size", "8",
                     "--group_size", "4", "--save_every", "2", "--service", "local", "--no_progress",
                     "--checkpoint_dir", str(root / "run")]) == 0
        yield {"name": name, "run": root / "run", "root": root}


def _ab(trained, *args):
    return main(["ab", "--dataset", trained["name"], "--emb_backend", "sentence-transformers", *args])


def test_two_checkpoints_write_the_report_and_log_it(trained, tmp_path, capsys):
    run = trained["run"]
    out = tmp_path / "report"
    assert _ab(trained, "--a", str(run / "checkpoint_final"), "--b", str(run / "checkpoint_step_2"),
               "--split", "valid", "--n_bootstrap", "200", "--experiment", "ab-cli", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "run/checkpoint_final (A) vs run/checkpoint_step_2 (B), tiny-ml valid, 36 users" in printed
    assert (out / "report.md").read_text().startswith("# Offline A/B: run/checkpoint_final vs run/checkpoint_step_2")
    assert (out / "ab.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "ab.json").read_text())
    assert saved["users"] == 36 and saved["wins"] + saved["ties"] + saved["losses"] == 36
    run_id = printed.split("MLflow run ")[1].split()[0]
    c = mt.client()
    assert {"report.md", "ab.png", "per_user.csv"} <= {f.path for f in c.list_artifacts(run_id)}
    mlrun = c.get_run(run_id)
    assert mlrun.data.params["split"] == "valid" and mlrun.data.params["b"] == "run/checkpoint_step_2"
    assert mlrun.data.metrics["ab/ndcg_at_10/diff"] == pytest.approx(saved["metrics"][0]["diff"])


def test_the_same_policy_twice_ties_everywhere(trained, tmp_path, capsys):
    # the run folder resolves to its checkpoint_final: A == B, evaluated once
    out = tmp_path / "same"
    assert _ab(trained, "--a", str(trained["run"]), "--b", str(trained["run"] / "checkpoint_final"),
               "--max_users", "12", "--no_mlflow", "--out", str(out)) == 0
    saved = json.loads((out / "ab.json").read_text())
    assert (saved["wins"], saved["ties"], saved["losses"]) == (0, 12, 0)
    assert all(m["lo"] <= 0 <= m["hi"] and m["diff"] == 0 for m in saved["metrics"])
    assert "MLflow run" not in capsys.readouterr().out


def test_a_baseline_against_a_registered_model(trained, tmp_path, capsys):
    from tasks import registry

    with mt.tracked_run(run_name="register", experiment="ab-cli") as run_id:
        version = registry.register_policy(registry.log_policy_model(run_id, trained["run"] / "checkpoint_final"),
                                           "rl4rec-tiny-ml", alias="champion")
    out = tmp_path / "reg"
    assert _ab(trained, "--a", "models:/rl4rec-tiny-ml@champion", "--b", "popularity", "--max_users", "12",
               "--no_mlflow", "--out", str(out)) == 0
    saved = json.loads((out / "ab.json").read_text())
    assert saved["a"] == "rl4rec-tiny-ml@champion" and saved["b"] == "popularity" and saved["users"] == 12
    # the registered copy ranks exactly like the checkpoint it came from
    direct = tmp_path / "direct"
    assert _ab(trained, "--a", f"models:/rl4rec-tiny-ml/{version}", "--b", str(trained["run"]), "--max_users", "12",
               "--no_mlflow", "--out", str(direct)) == 0
    assert json.loads((direct / "ab.json").read_text())["ties"] == 12


@pytest.mark.parametrize("spec, message", [
    ("no/such/folder", "--a 'no/such/folder' resolves to nothing: no such folder, not a baseline"),
    ("popularty", "--a 'popularty' resolves to nothing"),
    ("models:/rl4rec-tiny-ml@nobody", "no model 'rl4rec-tiny-ml' with alias 'nobody'"),
])
def test_specs_that_resolve_to_nothing(trained, spec, message, capsys):
    assert _ab(trained, "--a", spec, "--b", "popularity", "--no_mlflow") == 2
    err = capsys.readouterr().err
    assert message in err and "error:" in err


def test_folder_without_a_checkpoint_unknown_dataset_and_bad_split(trained, tmp_path, capsys):
    assert _ab(trained, "--a", "popularity", "--b", str(tmp_path), "--no_mlflow") == 2
    assert "--b" in (err := capsys.readouterr().err) and "no checkpoint found" in err
    assert main(["ab", "--a", "echo", "--b", "popularity", "--dataset", "nodata", "--no_mlflow"]) == 2
    assert "rl4rec data prepare --dataset nodata" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        _ab(trained, "--a", "echo", "--b", "popularity", "--split", "train")
    assert exit_.value.code == 2 and "invalid choice: 'train'" in capsys.readouterr().err
