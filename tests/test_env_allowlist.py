"""The environment of Ray workers and the retrieval actor is an allow-list (rl4rec_core/env_allowlist.py):
credentials of any name stay in the driver unless the user names them, and Ray's token file is private."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from rl4rec_core.paths import worker_env
from rl4rec_core.ray_access import withheld_secrets

# the names a deny-pattern missed (issue 22): none is "a word TOKEN/KEY/PASSWORD between underscores"
FAKE_SECRETS = {
    "PGPASSWORD": "fake-pg-secret-22",
    "DATABASE_URL": "postgres://app:fake-db-secret-22@db.example:5432/app",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountKey=fake-azure-secret-22",
    "OPENAI_APIKEY": "fake-openai-secret-22",
    "GITHUB_PAT": "fake-gh-secret-22",
}


def leaked(env: dict[str, str]) -> list[str]:
    """Variables of ``env`` that are, or hold the value of, a fake secret."""
    return sorted(k for k, v in env.items() if k in FAKE_SECRETS or any(s in v for s in FAKE_SECRETS.values()))


def test_credentials_of_any_name_are_withheld_unless_named(monkeypatch):
    monkeypatch.delenv("RL4REC_WORKER_SECRETS", raising=False)
    for k, v in FAKE_SECRETS.items():
        monkeypatch.setenv(k, v)
    assert set(FAKE_SECRETS) <= set(withheld_secrets())
    assert not leaked(worker_env()) and not leaked(worker_env(names=("MLFLOW_TRACKING_URI",)))
    # what the workers need stays: rl4rec's, HF's and Ray's own settings
    monkeypatch.setenv("HF_HOME", "/models/hf")
    monkeypatch.setenv("RL4REC_EMB_BACKEND", "sentence-transformers")
    assert not {"HF_HOME", "RL4REC_EMB_BACKEND", "PATH", "HOME", "RAY_AUTH_MODE"} & set(withheld_secrets())
    # the one way to add names
    monkeypatch.setenv("RL4REC_WORKER_SECRETS", "GITHUB_PAT OPENAI_APIKEY")
    assert worker_env()["GITHUB_PAT"] == FAKE_SECRETS["GITHUB_PAT"]
    assert {"GITHUB_PAT", "OPENAI_APIKEY"}.isdisjoint(withheld_secrets())
    assert leaked(worker_env()) == ["GITHUB_PAT", "OPENAI_APIKEY"]


NEW_RAY = """
import json, os, ray
from rl4rec_core.ray_access import init_ray
init_ray("local", num_cpus=1, include_dashboard=False, log_to_driver=False)

@ray.remote
def task_env():
    return dict(os.environ)

@ray.remote(num_cpus=0)
class Actor:
    def env(self):
        return dict(os.environ)

actor = Actor.remote()
print("ENVS", json.dumps({"task": ray.get(task_env.remote(), timeout=120), "actor": ray.get(actor.env.remote(), timeout=120),
                          "driver": dict(os.environ)}))
"""


def test_a_new_local_ray_gives_its_task_and_actor_no_unlisted_variable(tmp_path):
    env = {**os.environ, **FAKE_SECRETS, "SOME_UNLISTED_SETTING": "1"}
    for k in ("RAY_ADDRESS", "RL4REC_WORKER_SECRETS"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, "-c", NEW_RAY], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    envs = json.loads(out.stdout.split("ENVS ", 1)[1])
    for where in ("task", "actor"):
        assert not leaked(envs[where]) and "SOME_UNLISTED_SETTING" not in envs[where], where
        assert envs[where]["RAY_AUTH_MODE"] == "token" and envs[where]["PATH"]
    assert leaked(envs["driver"]) == sorted(FAKE_SECRETS)  # the driver keeps its own


TOKEN = """
import os, ray
from rl4rec_core.ray_access import init_ray
from pathlib import Path
token = Path(os.environ["HOME"]) / ".ray" / "auth_token"
init_ray("local", num_cpus=1, include_dashboard=False, log_to_driver=False)
print("CREATED", oct(token.stat().st_mode & 0o777))
ray.shutdown()
token.chmod(0o644)
init_ray("local", num_cpus=1, include_dashboard=False, log_to_driver=False)
print("FOUND", oct(token.stat().st_mode & 0o777))
"""


def test_rays_token_file_is_made_private_when_created_or_found_readable(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, "-c", TOKEN], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "CREATED 0o600" in out.stdout and "FOUND 0o600" in out.stdout, out.stdout
    token = tmp_path / ".ray" / "auth_token"
    warnings = [line for line in out.stderr.splitlines() if f"Ray's token {token} was readable by other users" in line]
    assert len(warnings) == 2 and "(mode 644)" in warnings[1], out.stderr[-3000:]
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
