"""The environment handed to Ray workers and actors: the same locations, made absolute."""

from __future__ import annotations

from rl4rec_core.paths import worker_env


def test_worker_env_makes_locations_absolute_and_forwards_only_what_workers_need(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path.resolve()
    for var in ("RL4REC_DATA_DIR", "RL4REC_EMB_DIR", "RL4REC_CACHE_DIR", "RL4REC_CHECKPOINT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RL4REC_EMB_DIR", "embs")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", "/user/rewards")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    env = worker_env()
    assert env["RL4REC_EMB_DIR"] == str(root / "embs")
    # unset locations still reach the worker, as this process's defaults
    assert env["RL4REC_DATA_DIR"] == str(root / "data")
    assert env["RL4REC_CHECKPOINT_ROOT"] == str(root / "checkpoints")
    assert env["HF_HUB_OFFLINE"] == "1" and env["PYTHONPATH"] == "/user/rewards"
    assert "MLFLOW_TRACKING_URI" not in env and "RL4REC_CACHE_DIR" not in env
    assert worker_env(prefixes=("MLFLOW_",))["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"
