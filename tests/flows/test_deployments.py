"""prefect.yaml (repository root, where `prefect deploy` finds it) deployed to a real local Prefect server (``prefect server start``), one
deployment run through a real process worker, and the flow run read back Completed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.tiny_recdata import write_tiny_dataset

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"


def test_prefect_yaml_declares_pipeline_schedule_and_process_pool():
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    deps = {d["name"]: d for d in spec["deployments"]}
    assert {"pipeline", "pipeline-quick", "weekly-retraining"} <= set(deps)
    assert deps["pipeline"]["parameters"]["run"] == {"dataset_name": "ml-100k"}
    assert deps["pipeline-quick"]["parameters"]["profile"] == "quick"  # settings.PROFILES: the dummy policy
    [schedule] = deps["weekly-retraining"]["schedules"]
    assert schedule["cron"] == "0 3 * * 1" and schedule["timezone"] == "Europe/Berlin" and schedule["active"] is True
    assert deps["weekly-retraining"]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert {d["work_pool"]["name"] for d in deps.values()} == {"rl4rec-process"}
    # module entrypoints: Ray workers unpickle the flow's module by name, which a file path would not give
    assert all(":" in d["entrypoint"] and ".py" not in d["entrypoint"] for d in deps.values())


@pytest.mark.slow
def test_deploy_and_run_through_a_process_worker(rl4rec_dirs, tmp_path, monkeypatch):
    from tests.helpers.prefect_server import background_server, prefect_cli

    # the server's database, the MLflow store and all data stay in tmp_path
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect_home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    with background_server() as (api, log_file):
        env = {**os.environ, "PREFECT_API_URL": api, "PWD": str(REPO),
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
               "RL4REC_PREFECT_RESULTS": str(tmp_path / "prefect-results")}
        prefect_cli("work-pool", "create", "rl4rec-process", "--type", "process", env=env)
        out = prefect_cli("deploy", "--all", env=env)  # no --prefect-file: found in the repository root
        assert "rl4rec-retraining/weekly-retraining" in out
        # settings groups, as the Prefect UI's form sends them; the deployment's profile (the dummy policy) stays
        params = {"run": {"dataset_name": "tiny-ml"}, "trainer": {"num_steps": 3, "batch_size": 8},
                  "evaluation": {"eval_users": None, "baselines": ["popularity"], "evaluate_untrained": False}}
        # as the README shows it: `prefect deployment run ... --watch` waits for the worker to finish the run
        # and exits 0 only when it completed
        watcher = subprocess.Popen(
            [sys.executable, "-m", "prefect", "--no-prompt", "deployment", "run", "rl4rec-pipeline/pipeline-quick",
             "--params", json.dumps(params), "--watch"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        head = []
        for line in watcher.stdout:  # the run exists once its UUID is printed; then the worker may start
            head.append(line)
            if "UUID:" in line:
                break
        flow_run_id = next(line.split("UUID:")[1].strip() for line in head if "UUID:" in line)
        prefect_cli("worker", "start", "--pool", "rl4rec-process", "--run-once", env=env, timeout=540)
        watched, _ = watcher.communicate(timeout=120)
        assert watcher.returncode == 0 and "finished successfully" in watched, "".join(head) + watched[-3000:]

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            retraining = client.read_deployment_by_name("rl4rec-retraining/weekly-retraining")
        assert run.state_type.value == "COMPLETED", run.state
        assert run.parameters["trainer"]["num_steps"] == 3
        assert len(tasks) >= 7 and all(t.state_type.value == "COMPLETED" for t in tasks)
        [sched] = retraining.schedules
        assert sched.schedule.cron == "0 3 * * 1" and sched.schedule.timezone == "Europe/Berlin" and sched.active
        # one retraining at a time, as deployed
        assert retraining.global_concurrency_limit.limit == 1
        assert retraining.concurrency_options.collision_strategy.value == "ENQUEUE"
