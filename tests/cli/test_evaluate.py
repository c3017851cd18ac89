"""``rl4rec evaluate --checkpoint ...`` as a user runs it, on a real dummy-policy checkpoint."""

from __future__ import annotations

import json

import pytest

from rl4rec_core.cli import main
from rl4rec_core.data import load_dataset
from rl4rec_core.embeddings.files import generate_item_embeddings
from tests.helpers.tiny_recdata import write_tiny_dataset


def test_checkpoint_beside_untrained_and_popularity(rl4rec_dirs, tmp_path, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    ckpt = tmp_path / "run"
    assert main(["train", "--dataset_name", name, "--use_dummy", "--num_steps", "4", "--batch_size", "8",
                 "--group_size", "4", "--save_every", "2", "--service", "local", "--no_progress",
                 "--checkpoint_dir", str(ckpt)]) == 0
    capsys.readouterr()

    out_json = tmp_path / "metrics.json"
    assert main(["evaluate", "--dataset", name, "--split", "valid", "--baseline", "popularity",
                 "--checkpoint", str(ckpt / "checkpoint_final"), "--with_untrained",
                 "--emb_backend", "sentence-transformers", "--output", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "policy:checkpoint_final" in out and "untrained" in out and "popularity" in out
    assert "paired bootstrap 95% interval" in out
    saved = json.loads(out_json.read_text())
    rows = saved["results"]
    users = load_dataset(name).num_users
    assert rows["untrained"]["users"] == rows["policy:checkpoint_final"]["users"] == users
    assert 0.0 <= rows["untrained"]["ndcg@10"] <= 1.0
    # per-user ranks and the interval are saved, so the comparison can be redone or re-plotted later
    ranks = saved["ranks"]
    assert len(ranks["untrained"]) == len(ranks["policy:checkpoint_final"]) == users
    boot = saved["paired_bootstrap"]
    lo, hi = boot["ci95"]
    assert boot["metric"] == "ndcg@10" and boot["users"] == users and lo <= boot["trained_minus_untrained"] <= hi


def test_policy_names_the_kind_and_nothing_to_evaluate_says_what_to_pass(rl4rec_dirs, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    with pytest.raises(SystemExit):  # --policy is the kind (llm or dummy); the model is --policy_model
        main(["evaluate", "--dataset_name", name, "--policy", "some-model"])
    assert "argument --policy: invalid choice: 'some-model'" in capsys.readouterr().err
    assert main(["evaluate", "--dataset_name", name, "--baselines"]) == 2
    assert "nothing to evaluate: pass --baselines" in capsys.readouterr().err


def test_several_rows_on_the_same_users_with_paired_intervals(rl4rec_dirs, tmp_path, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    assert main(["tune-retrieval", "--dataset", name, "--betas", "0", "0.1", "--ms", "1", "2"]) == 0
    ckpt = tmp_path / "run"
    assert main(["train", "--dataset_name", name, "--use_dummy", "--num_steps", "2", "--batch_size", "8",
                 "--save_every", "1", "--service", "local", "--no_progress", "--checkpoint_dir", str(ckpt)]) == 0
    capsys.readouterr()
    out_json = tmp_path / "rows.json"
    assert main(["evaluate", "--dataset", name, "--split", "valid", "--baseline", "popularity", "echo+prior",
                 "--checkpoint", str(ckpt / "checkpoint_step_1"), str(ckpt / "checkpoint_final"),
                 "--labels", "early", "final", "--max_users", "20", "--emb_backend", "sentence-transformers",
                 "--compare", "final:echo+prior", "final:early", "--output", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "final - echo+prior  ndcg@10" in out and "Paired differences over the same 20 users" in out
    saved = json.loads(out_json.read_text())
    assert {len(r) for r in saved["ranks"].values()} == {20}  # every row on the same 20 users
    assert saved["results"]["final"]["scorer"] == saved["results"]["echo+prior"]["scorer"]  # one scorer
    assert [(r["a"], r["b"], r["metric"]) for r in saved["intervals"]][:2] == [
        ("final", "echo+prior", "ndcg@10"), ("final", "echo+prior", "hit@10")]
    assert main(["evaluate", "--dataset", name, "--baseline", "popularity", "--compare", "popularity:bpr"]) == 2
    assert "give A:B with two evaluated rows" in capsys.readouterr().err
    assert main(["evaluate", "--dataset", name, "--checkpoint", str(ckpt / "checkpoint_final"),
                 "--labels", "a", "b"]) == 2


def _trained_run(rl4rec_dirs, tmp_path, llm: bool):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    if llm:
        from tests.helpers.tiny_lm import make_tiny_lm

        policy = ["--policy_model", make_tiny_lm(tmp_path / "lm"), "--max_new_tokens", "3"]
    else:
        policy = ["--use_dummy"]
    assert main(["train", "--dataset_name", name, *policy, "--num_steps", "1", "--batch_size", "4",
                 "--group_size", "2", "--service", "local", "--no_progress",
                 "--checkpoint_dir", str(tmp_path / "run")]) == 0
    return name, tmp_path / "run" / "checkpoint_final"


def _evaluate_error(name, checkpoint, capsys) -> str:
    capsys.readouterr()
    assert main(["evaluate", "--dataset", name, "--split", "valid", "--checkpoint", str(checkpoint),
                 "--max_users", "3", "--emb_backend", "sentence-transformers"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err and "Fix:" in lines[0], err
    return lines[0]


@pytest.mark.parametrize("llm", [False, True], ids=["dummy", "llm"])
def test_a_hostile_checkpoint_is_refused_before_it_runs(rl4rec_dirs, tmp_path, capsys, llm):
    """A pickle that would run code as the policy's state file, with a manifest that agrees."""
    from tests.helpers.hostile import plant_pickle

    name, final = _trained_run(rl4rec_dirs, tmp_path, llm)
    marker = tmp_path / "ran"
    bad = plant_pickle(final / "policy" / ("training_state.pt" if llm else "state.pt"), marker)
    try:
        line = _evaluate_error(name, final, capsys)
    finally:
        assert not marker.exists(), "the planted pickle ran"
    assert str(bad) in line and "could run code" in line


@pytest.mark.parametrize("what", ["policy/state.pt", "trainer_state.json", "config.json", "policy/policy.json"])
@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "old-no-manifest"])
def test_a_damaged_checkpoint_is_a_one_line_error(rl4rec_dirs, tmp_path, capsys, what, manifest):
    from tests.helpers.hostile import truncate

    name, final = _trained_run(rl4rec_dirs, tmp_path, llm=False)
    if not manifest:
        (final / "manifest.json").unlink()
    truncate(final / what)
    line = _evaluate_error(name, final, capsys)
    assert f"{final / what} is damaged" in line
    # the run folder: its newest checkpoint is the one evaluated, so the same error
    assert f"{final / what} is damaged" in _evaluate_error(name, final.parent, capsys)
