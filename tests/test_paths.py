"""The environment handed to Ray workers and actors: the same locations, made absolute; an allow-list, so
credentials reach workers only when the user names them."""

from __future__ import annotations

from rl4rec_core.paths import worker_env

SECRETS = {"HF_TOKEN": "hf_x", "PREFECT_API_KEY": "pnu_x", "PREFECT_API_AUTH_STRING": "u:p",
           "MLFLOW_TRACKING_TOKEN": "mt_x", "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_TRACKING_USERNAME": "me"}


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
    assert worker_env(names=("MLFLOW_TRACKING_URI",))["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"


def test_credentials_reach_workers_only_when_named(monkeypatch):
    """Issue 14, part 6: worker_env copied every HF_*, MLFLOW_* and PREFECT_API_* variable, tokens included."""
    from tasks.runtime import worker_env as flow_worker_env

    monkeypatch.delenv("RL4REC_WORKER_SECRETS", raising=False)
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HF_HOME", "/models/hf")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    for env in (worker_env(), flow_worker_env()):
        assert not set(SECRETS) & set(env), sorted(set(SECRETS) & set(env))
        assert env["HF_HOME"] == "/models/hf"
    from tasks.runtime import prefect_api_url

    # the API the flow talks to (a test session's Prefect harness, when one runs, wins over the variable)
    assert flow_worker_env()["PREFECT_API_URL"] == (prefect_api_url() or "http://127.0.0.1:4200/api")
    # an unknown variable of a once-forwarded family stays home too: the list is of names, not prefixes
    monkeypatch.setenv("HF_SOMETHING_NEW", "1")
    assert "HF_SOMETHING_NEW" not in worker_env()

    monkeypatch.setenv("RL4REC_WORKER_SECRETS", "HF_TOKEN, PREFECT_API_KEY")
    for env in (worker_env(), flow_worker_env()):
        assert env["HF_TOKEN"] == "hf_x" and env["PREFECT_API_KEY"] == "pnu_x"
        assert "MLFLOW_TRACKING_TOKEN" not in env and "PREFECT_API_AUTH_STRING" not in env

