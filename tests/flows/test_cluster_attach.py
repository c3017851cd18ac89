"""``rl4rec run`` with ``RAY_ADDRESS`` set joins that cluster (a `ray start --head` of the test's own) and runs
its tasks and its 2 Ray Train workers there, instead of starting a Ray of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ray_cluster import readme_cluster
from tests.helpers.tiny_recdata import write_tiny_dataset


def _local_sessions() -> set[str]:
    """The session folders of Ray instances started with Ray's default temp folder (what a flow's own would use)."""
    root = Path("/tmp/ray")
    return {p.name for p in root.glob("session_2*")} if root.exists() else set()


def _cluster_jobs(env: dict) -> list[dict]:
    """The cluster's job table, read by a separate process that joins it."""
    code = ("import json, ray; from ray._private import state; ray.init(log_to_driver=False); "
            "print(json.dumps([{'id': j['JobID'].hex() if isinstance(j['JobID'], bytes) else str(j['JobID']), "
            "'entrypoint': j.get('Entrypoint', '')} for j in state.state.job_table()]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_flow_joins_a_running_cluster_and_trains_on_two_workers_there(rl4rec_dirs, tmp_path):
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    before = _local_sessions()
    with readme_cluster("r4a", port_offset=7, num_cpus=2) as (env, temp_dir):
        env = {k: v for k, v in env.items() if not k.startswith(("PREFECT_API_", "MLFLOW_TRACKING_URI"))}
        env["PREFECT_HOME"] = str(tmp_path / "prefect")
        jobs_before = _cluster_jobs(env)
        cmd = [sys.executable, "-m", "flows.cli", "run", "--quick", "--dataset_name", "tiny-ml", "--num_steps", "2",
               "--batch_size", "8", "--save_every", "2", "--eval_users", "20", "--num_workers", "2",
               "--cpus_per_worker", "0.5"]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=900)
        (tmp_path / "run_output.txt").write_text(out.stdout)
        assert out.returncode == 0, out.stdout[-4000:]
        jobs_after = _cluster_jobs(env)
        train_logs = [p for p in Path(temp_dir).rglob("*") if "train" in p.name.lower()]
    assert f"Ray:               cluster at {env['RAY_ADDRESS']}" in out.stdout
    # the flow's driver was a job of the test's cluster, and the cluster ran Ray Train
    assert len(jobs_after) > len(jobs_before) + 1  # the flow's job (and our second look)
    assert train_logs, "no Ray Train logs in the cluster's session folder"
    # and no Ray instance of its own was started
    assert _local_sessions() == before
    # rank 0 wrote the 2 steps, each over both workers
    logs = list(rl4rec_dirs["ckpt"].rglob("training_log.jsonl"))
    assert len(logs) == 1, logs
    records = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1] and {r["num_workers"] for r in records} == {2}
