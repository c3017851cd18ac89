"""Data-parallel training on Ray Train (``rl4rec train --num_workers N``): real local Ray, real ``TorchTrainer``
with gloo, the real retrieval actor (MiniLM item embeddings), a tiny LM built in the test.

Tolerance of "the same update": the relative L2 distance between the weight changes of the 1-worker and the
2-worker run is below 1e-3 (measured: 1.6e-5 after 2 steps). The samples and rewards are the same (keyed
sampling); what differs is float summation order (one mean over 8 sequences vs the mean of two means over 4), which AdamW's division by
sqrt(v) magnifies for weights whose gradient is near 0.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rl4rec_core.checkpoints import list_checkpoints
from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import RetrievalSettings, Settings
from tests.helpers.tiny_recdata import write_tiny_dataset

TIMES = ("time_generate", "time_reward", "time_update", "time_step", "update_s")


@pytest.fixture
def actor_data(rl4rec_dirs, ray_local):
    """The tiny dataset with real MiniLM item embeddings, served by a retrieval actor of this test's own that
    the runs attach to (a run that finds none starts one and removes it at its end)."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from rl4rec_core.retrieval import launch_retrieval_actor, remove_retrieval_actor

    write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset("tiny-ml"), backend="sentence-transformers")
    name = f"RetrievalService-{uuid.uuid4().hex[:8]}"
    # the handle is kept: Ray collects an actor that is not detached once no handle is left
    actor = launch_retrieval_actor(RetrievalSettings(actor_name=name, emb_backend="sentence-transformers"),
                                   ["tiny-ml"])
    yield name
    del actor
    remove_retrieval_actor(name, "rl4rec")


def _settings(folder: Path, actor: str, workers: int, **kw) -> Settings:
    flat = {"dataset_name": "tiny-ml", "num_steps": 2, "batch_size": 8, "group_size": 4, "save_every": 1,
            "max_new_tokens": 6, "lora_r": 4, "num_workers": workers, "checkpoint_dir": str(folder),
            "actor_name": actor, "emb_backend": "sentence-transformers", **kw}
    return Settings.of(**flat)


def _records(folder: Path) -> list[dict]:
    lines = (folder / "training_log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMES} for line in lines]


def _adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "checkpoint_final" / "policy" / "adapter_model.safetensors")


def _start(tiny_lm: str, folder: Path) -> dict[str, torch.Tensor]:
    """The LoRA weights both runs start from (seed 0), saved by a one-process policy."""
    from rl4rec_core.policy.config import PolicyConfig
    from rl4rec_core.policy.rec_policy import RecPolicy

    policy = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, lora_r=4, seed=0, max_new_tokens=6, kl_coef=0.0))
    policy.model.save_pretrained(folder)
    return load_file(folder / "adapter_model.safetensors")


@pytest.mark.slow
def test_two_workers_take_the_one_worker_step_write_once_and_resume(actor_data, tiny_lm, tmp_path):
    from rl4rec_core.training.ray_train import train_data_parallel

    one, two = tmp_path / "one", tmp_path / "two"
    summary1 = train_data_parallel(_settings(one, actor_data, 1, policy_model=tiny_lm), progress=False)
    summary2 = train_data_parallel(_settings(two, actor_data, 2, policy_model=tiny_lm), progress=False)
    assert summary1["steps"] == summary2["steps"] == 2

    # rank 0 alone writes: one log line per step, one set of checkpoints
    log1, log2 = _records(one), _records(two)
    assert [r["step"] for r in log2] == [0, 1] and {r["num_workers"] for r in log2} == {2}
    assert [p.name for _, p in list_checkpoints(two)] == ["checkpoint_step_1", "checkpoint_final"]
    # the same users, samples and rewards; stats over the whole batch of 8
    for a, b in zip(log1, log2):
        assert a["avg_reward"] == pytest.approx(b["avg_reward"], abs=1e-6)
        assert a["mean_rank"] == pytest.approx(b["mean_rank"], abs=1e-6)
        assert b["num_sequences"] == 8
    # the same update, within the tolerance of the module docstring
    start = _start(tiny_lm, tmp_path / "start")
    w1, w2 = _adapter(one), _adapter(two)
    delta1 = torch.cat([(w1[k] - start[k]).flatten() for k in sorted(w1)])
    delta2 = torch.cat([(w2[k] - start[k]).flatten() for k in sorted(w1)])
    assert delta1.norm() > 0
    assert float((delta2 - delta1).norm() / delta1.norm()) < 1e-3

    # a 2-worker run stopped after step 1 and resumed equals the uninterrupted 2-worker run
    part = tmp_path / "part"
    train_data_parallel(_settings(part, actor_data, 2, policy_model=tiny_lm, num_steps=1), progress=False)
    resumed = train_data_parallel(_settings(part, actor_data, 2, policy_model=tiny_lm, resume=True), progress=False)
    assert resumed["steps"] == 2
    assert _records(part) == log2
    w3 = _adapter(part)
    assert all(torch.allclose(w3[k], w2[k], atol=1e-6) for k in w2)


@pytest.mark.slow
def test_dummy_on_two_workers_prints_rank_0_once_and_keeps_a_finished_run(actor_data, tmp_path, capsys):
    from rl4rec_core.training.ray_train import train_data_parallel

    folder = tmp_path / "dummy"
    summary = train_data_parallel(_settings(folder, actor_data, 2, policy="dummy", num_steps=3, save_every=2),
                                  progress=False)
    out = capsys.readouterr().out
    assert "Step      0 | Loss:" in out and out.count("Step      0 |") == 1  # rank 0's lines, once
    assert summary["steps"] == 3 and [r["step"] for r in _records(folder)] == [0, 1, 2]
    # the folder now holds a run: rank 0 refuses a fresh one, and its error reaches the caller as it is
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_data_parallel(_settings(folder, actor_data, 2, policy="dummy"), progress=False)
    assert [r["step"] for r in _records(folder)] == [0, 1, 2]


def test_worker_counts_the_cluster_cannot_take_are_refused_before_launch(ray_local, tmp_path):
    from rl4rec_core.training.ray_train import check_capacity, train_data_parallel

    # users of a step must split evenly over the workers
    with pytest.raises(ConfigError, match="do not split over 2 workers"):
        train_data_parallel(_settings(tmp_path / "odd", "none", 2, policy="dummy", batch_size=12), progress=False)
    # more workers than the session Ray's 2 CPUs
    with pytest.raises(ConfigError, match="needs 3 CPUs, but the Ray cluster has 2"):
        train_data_parallel(_settings(tmp_path / "big", "none", 3, policy="dummy", batch_size=12), progress=False)
    with pytest.raises(ConfigError, match="needs a GPU per worker"):
        check_capacity(1, 1, use_gpu=True)
    assert not (tmp_path / "odd").exists() and not (tmp_path / "big").exists()


@pytest.mark.parametrize("bad, message", [
    ({"num_workers": 0}, "num_workers must be a positive integer"),
    ({"num_workers": -2}, "num_workers must be a positive integer"),
    ({"cpus_per_worker": 0}, "cpus_per_worker must be a number > 0"),
])
def test_worker_settings_are_checked(bad, message):
    with pytest.raises(ConfigError, match=message):
        Settings.of(**bad)


def test_cli_refuses_bad_worker_flags(rl4rec_dirs, capsys):
    from rl4rec_core.cli import main

    write_tiny_dataset(rl4rec_dirs["data"])
    base = ["train", "--dataset_name", "tiny-ml", "--use_dummy", "--batch_size", "8"]
    assert main([*base, "--num_workers", "0"]) == 2
    assert "num_workers must be a positive integer" in capsys.readouterr().err
    assert main([*base, "--num_workers", "2", "--service", "local"]) == 2
    assert "--service local builds the retrieval service inside one process" in capsys.readouterr().err
