"""``--resume`` under faults: damaged or hostile checkpoints, changed settings, nothing to resume,
and ``--overwrite`` over whatever a folder holds (the dummy policy, the trainer as the CLI builds it)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.integrity import MANIFEST
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.settings import Settings, flatten
from rl4rec_core.checkpoints import list_checkpoints, read_checkpoint
from rl4rec_core.training.trainer import RLTrainer
from tests.helpers.hostile import plant_pickle, refresh, truncate


def make(tiny, service, run, **kw):
    cfg = Settings.of(**{"dataset_name": tiny.name, "num_steps": 12, "batch_size": 8, "group_size": 4,
                         "policy": "dummy", "save_every": 5, "log_every": 5, "reward": "ndcg@10", "kl_coef": 0.0,
                         "checkpoint_dir": str(run), **kw})
    return RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False)


def _steps(trainer):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in trainer.log.read()]


@pytest.fixture
def finished(tiny, service, tmp_path):
    """A finished 12-step run: checkpoint_step_5, checkpoint_step_10 and checkpoint_final (step 12)."""
    make(tiny, service, tmp_path / "run").train()
    return tmp_path / "run"


@pytest.fixture
def whole(tiny, service, tmp_path):
    """The log of an uninterrupted 15-step run."""
    return _steps(_trained(make(tiny, service, tmp_path / "whole", num_steps=15)))


def _trained(trainer):
    trainer.train()
    return trainer


def _drop_manifests(run):
    for _, path in list_checkpoints(run):
        (path / MANIFEST).unlink()


DAMAGE = {
    "state.pt": lambda c: truncate(c / "policy" / "state.pt"),
    "trainer_state.json": lambda c: truncate(c / "trainer_state.json"),
    "config.json": lambda c: truncate(c / "config.json"),
    "policy.json": lambda c: truncate(c / "policy" / "policy.json"),
    "sampler": lambda c: (c / "trainer_state.json").write_text('{"step": 12, "sampler": 3, "rng": {}}'),
}


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "old-no-manifest"])
@pytest.mark.parametrize("what", sorted(DAMAGE))
def test_resume_falls_back_past_damaged_checkpoints(tiny, service, finished, whole, caplog, what, manifest):
    if not manifest:
        _drop_manifests(finished)
    DAMAGE[what](finished / "checkpoint_final")
    DAMAGE[what](finished / "checkpoint_step_10")
    caplog.set_level(logging.WARNING)
    resumed = make(tiny, service, finished, num_steps=15, resume=True)
    assert resumed.train()["resumed_from"] == 5
    skipped = [r.getMessage() for r in caplog.records if "--resume: skipping" in r.getMessage()]
    assert len(skipped) == 2 and all("damaged" in m for m in skipped), skipped
    assert skipped[0].startswith(f"--resume: skipping {finished / 'checkpoint_final'}: ")
    assert skipped[1].startswith(f"--resume: skipping {finished / 'checkpoint_step_10'}: ")
    assert _steps(resumed) == whole  # the fallback resumes exactly: same log as never interrupted


def test_resume_with_every_checkpoint_damaged_is_one_error_and_keeps_the_log(tiny, service, finished):
    for _, path in list_checkpoints(finished):
        truncate(path / "policy" / "state.pt")
    log_before = (finished / "training_log.jsonl").read_text()
    with pytest.raises(DataError) as e:
        make(tiny, service, finished, num_steps=15, resume=True).train()
    text = str(e.value)
    assert "\n" not in text and "none of the 3 checkpoints" in text and "--overwrite" in text
    assert "checkpoint_final: " in text and "state.pt is damaged" in text
    assert (finished / "training_log.jsonl").read_text() == log_before


def test_a_hostile_state_pt_never_runs_and_resume_falls_back(tiny, service, finished, tmp_path, caplog):
    marker = tmp_path / "ran"
    bad = plant_pickle(finished / "checkpoint_final" / "policy" / "state.pt", marker)  # manifest agrees
    caplog.set_level(logging.WARNING)
    resumed = make(tiny, service, finished, num_steps=13, resume=True)
    assert resumed.train()["resumed_from"] == 10
    assert not marker.exists()
    assert any(str(bad) in r.getMessage() and "could run code" in r.getMessage() for r in caplog.records)


def test_resume_refuses_settings_that_define_another_run(tiny, service, finished):
    log_before = (finished / "training_log.jsonl").read_text()
    with pytest.raises(ConfigError) as e:
        make(tiny, service, finished, resume=True, batch_size=16, reward="mrr", seed=3).train()
    text = str(e.value)
    assert "\n" not in text and "--override_config" in text
    assert "trainer.batch_size (saved 8, given 16)" in text
    assert "algorithm.reward (saved 'ndcg@10', given 'mrr')" in text and "run.seed (saved 0, given 3)" in text
    assert (finished / "training_log.jsonl").read_text() == log_before
    _, config = read_checkpoint(finished / "checkpoint_final")
    assert config["trainer"]["batch_size"] == 8  # the checkpoint still says what the run was


def test_resume_accepts_the_settings_that_may_differ(tiny, service, finished, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(finished, moved)
    resumed = make(tiny, service, moved, resume=True, num_steps=14, save_every=7, log_every=1, device="cpu",
                   actor_name="Other", namespace="elsewhere", emb_backend="sentence-transformers", chunk_size=128,
                   actor_cpus=0.5, max_restarts=1)
    assert resumed.train()["resumed_from"] == 12


def test_override_config_continues_with_the_new_settings_and_records_them(tiny, service, finished, caplog):
    caplog.set_level(logging.WARNING)
    resumed = make(tiny, service, finished, num_steps=14, resume=True, override_config=True, reward="mrr")
    assert resumed.train()["resumed_from"] == 12
    assert any("--override_config" in r.getMessage() and "algorithm.reward" in r.getMessage() for r in caplog.records)
    state, config = read_checkpoint(finished / "checkpoint_final")
    assert state["config_changes"] == [{"step": 12, "changes": {"algorithm.reward": {"saved": "ndcg@10", "given": "mrr"}}}]
    assert config["algorithm"]["reward"] == "mrr"
    # the new settings are now the run's: resuming with them needs no override, and the record stays
    again = make(tiny, service, finished, num_steps=15, resume=True, reward="mrr")
    again.train()
    assert read_checkpoint(finished / "checkpoint_final")[0]["config_changes"] == state["config_changes"]


def test_override_config_needs_resume():
    with pytest.raises(ConfigError, match="pass it with --resume"):
        Settings.of(override_config=True)


def test_a_flat_config_from_before_the_settings_tree_is_a_one_line_error(tiny, service, finished):
    """rl4rec 0.1 reads the settings tree only: an old flat config.json is refused, naming the file."""
    for _, path in list_checkpoints(finished):
        tree = json.loads((path / "config.json").read_text())
        flat = {k.split(".")[1]: v for k, v in flatten(tree).items()}
        (path / "config.json").write_text(json.dumps(flat))
        (path / MANIFEST).unlink()
    with pytest.raises(DataError, match="config.json holds no valid settings"):
        make(tiny, service, finished, num_steps=13, resume=True).train()


@pytest.mark.parametrize("holds", ["nothing", "missing folder", "only a log"])
def test_resume_with_nothing_to_resume_is_an_error_not_a_fresh_run(tiny, service, tmp_path, holds):
    run = tmp_path / "run"
    if holds != "missing folder":
        run.mkdir()
    if holds == "only a log":  # killed before its first checkpoint
        (run / "training_log.jsonl").write_text('{"step": 0}\n{"step": 1}\n')
    with pytest.raises(ConfigError) as e:
        make(tiny, service, run, resume=True).train()
    text = str(e.value)
    assert "\n" not in text and f"nothing to resume, {run}" in text and "--checkpoint_dir" in text
    if holds == "only a log":
        assert "--overwrite" in text and (run / "training_log.jsonl").read_text() == '{"step": 0}\n{"step": 1}\n'
    else:
        assert not (run / "training_log.jsonl").exists() and not list(run.glob("checkpoint_*"))


def test_overwrite_works_whatever_the_folder_holds(tiny, service, finished):
    (finished / "checkpoint_final" / "trainer_state.json").write_text("{not json")
    shutil.rmtree(finished / "checkpoint_step_5" / "policy")
    (finished / "checkpoint_step_10" / "trainer_state.json").unlink()  # half deleted
    (finished / ".checkpoint_step_15.abc123.tmp").mkdir()  # what a killed write leaves
    with pytest.raises(ConfigError, match="already holds a training run"):
        make(tiny, service, finished, num_steps=3).train()
    again = make(tiny, service, finished, num_steps=3, save_every=2, overwrite=True)
    again.train()
    assert sorted(p.name for p in finished.iterdir()) == ["checkpoint_final", "checkpoint_step_2", "training_log.jsonl"]
    assert [r["step"] for r in again.log.read()] == [0, 1, 2]


def test_a_damaged_final_is_listed_as_the_newest(finished):
    (finished / "checkpoint_final" / "trainer_state.json").write_text("{not json")
    assert [(s, p.name) for s, p in list_checkpoints(finished)] == [
        (5, "checkpoint_step_5"), (10, "checkpoint_step_10"), (10, "checkpoint_final")]


def test_checkpoints_carry_a_manifest_of_every_file(finished):
    files = json.loads((finished / "checkpoint_final" / MANIFEST).read_text())["files"]
    assert {"config.json", "trainer_state.json", "policy/policy.json", "policy/state.pt"} == set(files)
    refresh(finished / "checkpoint_final")  # rewriting it gives the same manifest: it covers all files
    assert json.loads((finished / "checkpoint_final" / MANIFEST).read_text())["files"] == files
