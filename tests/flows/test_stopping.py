"""A flow run stopped from outside stops its Ray work and exits within 10 s (tasks/stopping.py): on a real Prefect
server the test starts, through a real process worker (``prefect worker start``), with a real local Ray.

Two runs of the quick pipeline with a long training, each stopped while ``train_policy`` runs on Ray:
- cancelled through Prefect's API (as ``prefect flow-run cancel`` does): the run ends Cancelled;
- sent SIGTERM (the flow run's process alone, as a container runtime or ``kill`` would): the run ends Crashed,
  Prefect's state for a run terminated from outside.
Each time the flow run's process and every Ray process it started (GCS, raylet, the worker training, the
retrieval actor) are gone within 10 s, and its MLflow run is KILLED. The times are printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.tiny_recdata import write_tiny_dataset

DEADLINE_S = 10.0
# a training that would run for an hour: only a stop ends it
LONG_RUN = {"run": {"dataset_name": "tiny-ml"}, "trainer": {"num_steps": 100000, "batch_size": 8, "save_every": 100000},
            "evaluation": {"eval_users": None, "baselines": ["popularity"], "evaluate_untrained": False}}


def _cmd(process) -> str:
    """A process's command line, "" for one that has ended or is a zombie (Ray's helpers come and go)."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _training_process_tree(client, worker_pid: int, flow_run_id: str, timeout: float = 400):
    """The flow run's process and its descendants once its ``train_policy`` task runs."""
    import psutil
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if any(r.name.startswith("train_policy") and r.state_type.value == "RUNNING" for r in runs):
            break
        time.sleep(1)
    else:
        pytest.fail(f"train_policy of flow run {flow_run_id} did not start within {timeout:.0f} s")
    time.sleep(3)  # a few steps
    engine = next(p for p in psutil.Process(worker_pid).children(recursive=True) if "prefect.engine" in _cmd(p))
    return engine, [p for p in (engine, *engine.children(recursive=True)) if _cmd(p)]


def _gone_after(processes, since: float, limit: float = 60) -> float:
    """Seconds from ``since`` until none of ``processes`` runs (a zombie waiting for its parent counts as gone)."""
    import psutil

    def alive(p):
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    while any(alive(p) for p in processes) and time.monotonic() - since < limit:
        time.sleep(0.1)
    return time.monotonic() - since


def _final_state(client, flow_run_id: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.read_flow_run(flow_run_id).state
        if state.is_final():
            return state
        time.sleep(1)
    return client.read_flow_run(flow_run_id).state


def _mlflow_run(uri: str, flow_run_id: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("rl4rec").experiment_id],
                              filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}'")
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_a_cancelled_or_terminated_flow_run_stops_its_ray_work(rl4rec_dirs, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling

    from tests.helpers.prefect_server import REPO, background_server, prefect_cli

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect_home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    mlflow_uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    with background_server() as (api, _):
        env = {**os.environ, "PREFECT_API_URL": api, "PWD": str(REPO), "MLFLOW_TRACKING_URI": mlflow_uri,
               "RL4REC_PREFECT_RESULTS": str(tmp_path / "prefect-results")}
        prefect_cli("work-pool", "create", "rl4rec-process", "--type", "process", env=env)
        prefect_cli("deploy", "--name", "pipeline-quick", env=env)
        with open(tmp_path / "worker.log", "w") as log:
            worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "rl4rec-process"],
                                      cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
                for how, final in (("cancel", "CANCELLED"), ("sigterm", "CRASHED")):
                    out = prefect_cli("deployment", "run", "rl4rec-pipeline/pipeline-quick",
                                      "--params", json.dumps(LONG_RUN), env=env)
                    flow_run_id = next(line.split("UUID:")[1].strip() for line in out.splitlines() if "UUID:" in line)
                    engine, tree = _training_process_tree(client, worker.pid, flow_run_id)
                    assert any("train_policy" in _cmd(p) for p in tree), [_cmd(p) for p in tree]
                    start = time.monotonic()
                    if how == "cancel":  # what `prefect flow-run cancel` does, without its start-up
                        client.set_flow_run_state(flow_run_id, Cancelling())
                    else:
                        os.kill(engine.pid, signal.SIGTERM)
                    seconds = _gone_after(tree, start)
                    state = _final_state(client, flow_run_id)
                    print(f"{how}: the flow run's process and its {len(tree) - 1} Ray processes were gone "
                          f"{seconds:.1f} s after the {how}; final state {state.type.value}")
                    assert seconds <= DEADLINE_S, f"{how}: still running {seconds:.1f} s later; see {tmp_path}/worker.log"
                    assert state.type.value == final, (how, state)
                    run = _mlflow_run(mlflow_uri, flow_run_id)
                    assert run.info.status == "KILLED" and "TerminationSignal" in run.data.tags["rl4rec.error"]
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
