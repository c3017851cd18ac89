"""``rl4rec train`` as a user runs it: flags, config errors, and kill -9 then --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rl4rec_core.cli import main
from tests.helpers.tiny_recdata import write_tiny_dataset


def test_config_errors_exit_2_with_the_fix(rl4rec_dirs, capsys):
    assert main(["train", "--use_dummy", "--batch_size", "10", "--group_size", "4"]) == 2
    assert "not divisible by group_size" in capsys.readouterr().err
    assert main(["train", "--use_dummy", "--reward", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["train", "--use_dummy", "--algorithm", "reinforce", "--group_size", "1", "--batch_size", "4",
                 "--resume", "--overwrite"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_missing_dataset_names_the_prepare_command(rl4rec_dirs, capsys):
    assert main(["train", "--use_dummy", "--dataset_name", "nowhere", "--service", "local"]) == 2
    assert "rl4rec data prepare --dataset nowhere" in capsys.readouterr().err


def _records(path):
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time_")}
            for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_kill_then_resume_matches_uninterrupted(rl4rec_dirs, tmp_path, capsys):
    """A real process killed with SIGKILL after its first checkpoint, resumed with --resume, writes the
    same training_log.jsonl (times aside) as a run that was never stopped."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings

    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    args = ["train", "--dataset_name", name, "--use_dummy", "--num_steps", "40", "--batch_size", "8",
            "--group_size", "4", "--save_every", "2", "--log_every", "5", "--service", "local", "--no_progress"]

    assert main([*args, "--checkpoint_dir", str(tmp_path / "whole")]) == 0
    out = capsys.readouterr().out
    assert "Reward source: in-process RetrievalService" in out and "Step      0 | Loss:" in out
    expected = _records(tmp_path / "whole" / "training_log.jsonl")
    assert len(expected) == 40

    cut = tmp_path / "cut"
    cmd = [sys.executable, "-m", "flows.cli", *args, "--checkpoint_dir", str(cut)]
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (cut / "checkpoint_step_2").is_dir() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (cut / "checkpoint_final").exists()

    done = subprocess.run([*cmd, "--resume"], env=os.environ.copy(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Resumed from" in done.stdout
    assert _records(cut / "training_log.jsonl") == expected


def test_service_ray_without_the_actor_is_a_clear_error(ray_local):
    from rl4rec_core.errors import Rl4recError
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.settings import RetrievalSettings

    retrieval = RetrievalSettings(actor_name="NoSuchRetrievalService", namespace="rl4rec")
    with pytest.raises(Rl4recError, match="RetrievalService not found.*rl4rec serve --datasets ml-100k"):
        connect_reward_source("ml-100k", retrieval, mode="ray")


def test_unknown_service_mode():
    from rl4rec_core.errors import ConfigError
    from rl4rec_core.retrieval.source import connect_reward_source
    from rl4rec_core.settings import RetrievalSettings

    with pytest.raises(ConfigError, match="--service"):
        connect_reward_source("ml-100k", RetrievalSettings(), mode="remote")


def test_llm_flags_reach_the_saved_policy(rl4rec_dirs, tmp_path, capsys):
    """Prompt and sampling flags of a tiny-LM run end up in the checkpoint's policy.json; a bad one
    exits 2 naming the flag's problem."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from tests.helpers.tiny_lm import make_tiny_lm

    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    model = make_tiny_lm(tmp_path / "lm")
    args = ["train", "--dataset_name", name, "--policy_model", model, "--num_steps", "1", "--batch_size", "4",
            "--group_size", "2", "--service", "local", "--no_progress", "--max_new_tokens", "3",
            "--checkpoint_dir", str(tmp_path / "run")]
    flags = ["--history_len", "2", "--prompt_template", "plain", "--top_p", "0.9", "--lora_r", "4",
             "--micro_batch_size", "2", "--temperature", "0.7", "--reward", "log_rank", "--response_prefix", 'Next: "']
    assert main([*args, *flags]) == 0
    saved = json.loads((tmp_path / "run" / "checkpoint_final" / "policy" / "policy.json").read_text())["config"]["policy"]
    assert {k: saved[k] for k in ("history_len", "prompt_template", "top_p", "lora_r", "micro_batch_size",
                                  "temperature", "max_new_tokens", "response_prefix")} == {
        "history_len": 2, "prompt_template": "plain", "top_p": 0.9, "lora_r": 4, "micro_batch_size": 2,
        "temperature": 0.7, "max_new_tokens": 3, "response_prefix": 'Next: "'}
    capsys.readouterr()
    assert main([*args, "--overwrite", "--history_len", "0"]) == 2
    assert "history_len must be a positive integer" in capsys.readouterr().err


def _tiny_run_args(rl4rec_dirs, tmp_path, llm: bool) -> list[str]:
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings

    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    if llm:
        from tests.helpers.tiny_lm import make_tiny_lm

        policy = ["--policy_model", make_tiny_lm(tmp_path / "lm"), "--max_new_tokens", "3", "--num_steps", "1"]
    else:
        policy = ["--use_dummy", "--num_steps", "2", "--save_every", "1"]
    return ["train", "--dataset_name", name, *policy, "--batch_size", "4", "--group_size", "2", "--service",
            "local", "--no_progress", "--checkpoint_dir", str(tmp_path / "run")]


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "Fix:" in lines[0]
    return lines[0]


@pytest.mark.parametrize("llm", [False, True], ids=["dummy", "llm"])
def test_resume_never_runs_a_hostile_checkpoint(rl4rec_dirs, tmp_path, capsys, llm):
    """A pickle that would run code, planted as the policy's state file of every checkpoint (with a
    manifest that agrees, as a crafted checkpoint has): refused before it runs, one line, exit 2."""
    from rl4rec_core.checkpoints import list_checkpoints
    from tests.helpers.hostile import plant_pickle

    args = _tiny_run_args(rl4rec_dirs, tmp_path, llm)
    assert main(args) == 0
    marker, state = tmp_path / "ran", "training_state.pt" if llm else "state.pt"
    planted = [plant_pickle(path / "policy" / state, marker) for _, path in list_checkpoints(tmp_path / "run")]
    capsys.readouterr()
    try:
        rc = main([*args, "--resume", "--num_steps", "3"])
    finally:
        assert not marker.exists(), "the planted pickle ran"
    assert rc == 2
    line = _one_line_error(capsys.readouterr().err)
    assert all(str(p) in line for p in planted) and "could run code" in line and "--overwrite" in line


def test_resume_of_a_mistyped_folder_is_an_error_and_the_log_is_kept(rl4rec_dirs, tmp_path, capsys):
    args = _tiny_run_args(rl4rec_dirs, tmp_path, llm=False)
    assert main(args) == 0
    log = tmp_path / "run" / "training_log.jsonl"
    before = log.read_text()
    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "rnu"), "--resume"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert f"nothing to resume, {tmp_path / 'rnu'} does not exist" in line and not (tmp_path / "rnu").exists()
    for path in (tmp_path / "run").glob("checkpoint_*"):  # a run killed before its first checkpoint
        shutil.rmtree(path)
    assert main([*args, "--resume"]) == 2
    assert "nothing to resume" in _one_line_error(capsys.readouterr().err) and log.read_text() == before


def test_resume_with_other_settings_is_refused_unless_overridden(rl4rec_dirs, tmp_path, capsys):
    args = _tiny_run_args(rl4rec_dirs, tmp_path, llm=False)
    assert main(args) == 0
    capsys.readouterr()
    changed = [*args, "--resume", "--num_steps", "3", "--batch_size", "8", "--reward", "mrr", "--seed", "1"]
    assert main(changed) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "trainer.batch_size (saved 4, given 8)" in line and "algorithm.reward (saved 'log_rank', given 'mrr')" in line
    assert "run.seed (saved 0, given 1)" in line and "--override_config" in line and "num_steps" not in line
    assert main([*changed, "--override_config"]) == 0
    state = json.loads((tmp_path / "run" / "checkpoint_final" / "trainer_state.json").read_text())
    assert sorted(state["config_changes"][0]["changes"]) == ["algorithm.reward", "run.seed", "trainer.batch_size"]
