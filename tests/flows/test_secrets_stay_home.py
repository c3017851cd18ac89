"""``rl4rec run --quick`` with credentials in its environment that no pattern foresees (issue 22): none of
them reaches a Ray worker running a task, nor the retrieval actor. The environment is read from inside
both, by a custom reward (``pkg.module:fn``) that records it when it is imported: the training task builds
the trainer (which imports the reward), and the actor computes every reward. The driver, which only builds
settings, never imports it (settings check an import path by its form)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.tiny_recdata import write_tiny_dataset
from tests.test_env_allowlist import FAKE_SECRETS, leaked

PROBE = '''
import json, os
OUT = {out!r}

def _record():
    import ray
    ctx = ray.get_runtime_context() if ray.is_initialized() else None
    where = {{"pid": os.getpid(), "actor": ctx.get_actor_id() if ctx else None,
             "task": ctx.get_task_id() if ctx else None, "env": dict(os.environ)}}
    with open(os.path.join(OUT, f"{{os.getpid()}}.json"), "w") as f:
        json.dump(where, f)

_record()


def reward(*, ranks, **_):
    return 1.0 / ranks.float()
'''


@pytest.mark.slow
def test_no_credential_reaches_a_task_or_the_actor(rl4rec_dirs, tmp_path):
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    records, lib = tmp_path / "records", tmp_path / "lib"
    records.mkdir()
    lib.mkdir()
    (lib / "env_probe.py").write_text(textwrap.dedent(PROBE.format(out=str(records))))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_API_", "RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RL4REC_WORKER_SECRETS"))}
    env.update(FAKE_SECRETS, PREFECT_HOME=str(tmp_path / "prefect"),
               PYTHONPATH=os.pathsep.join([str(lib), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "flows.cli", "run", "--quick", "--dataset_name", "tiny-ml", "--num_steps", "2",
           "--batch_size", "8", "--save_every", "2", "--eval_users", "0", "--reward", "env_probe:reward"]
    run = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = run.communicate(timeout=900)
    assert run.returncode == 0, out[-4000:]
    seen = [json.loads(p.read_text()) for p in records.glob("*.json")]
    workers = [r for r in seen if r["pid"] != run.pid]
    actors = [r for r in workers if r["actor"]]
    tasks = [r for r in workers if r["task"] and not r["actor"]]
    assert actors and tasks, [(r["pid"], r["actor"], r["task"]) for r in seen]
    for record in workers:
        assert not leaked(record["env"]), (record["actor"] and "actor", leaked(record["env"]))
    assert not [r for r in seen if r["pid"] == run.pid], "the driver imported the reward: settings ran user code"
    assert leaked(env) == sorted(FAKE_SECRETS)  # the driver had every one of them to hand on
