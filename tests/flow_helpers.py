"""Shared set-up for the flow tests: a tiny prepared dataset, a temporary MLflow store, and reading
task runs back from the Prefect API."""

from __future__ import annotations

import uuid

import pytest
from tiny_recdata import write_tiny_dataset

from tasks import tracking as mt

# flat setting names, as `rl4rec run`'s flags; `groups(...)` turns them into a flow's parameters
QUICK = dict(dataset_name="tiny-ml", use_dummy=True, num_steps=4, batch_size=8, group_size=4, save_every=2,
             eval_users=None)


def groups(flow=None, **flat) -> dict:
    """A flow's settings groups as plain dicts, as a deployment sends them (Prefect validates them)."""
    import inspect

    from flows.params import FLOW_GROUPS, split_by_group

    names = tuple(FLOW_GROUPS) if flow is None else tuple(
        n for n in inspect.signature(flow.fn).parameters if n in FLOW_GROUPS)
    return split_by_group(flat, names)


@pytest.fixture
def flow_env(rl4rec_dirs, tmp_path, monkeypatch, ray_local, prefect_api):
    """Everything a flow needs, inside tmp_path; a unique actor name so tests never share an actor."""
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    uri = mt.default_tracking_uri(tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mt.configure_mlflow(uri)
    return {"dirs": rl4rec_dirs, "actor": f"RetrievalService-{uuid.uuid4().hex[:8]}", "tmp": tmp_path}


def task_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def actor_exists(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace="rl4rec")
        return True
    except ValueError:
        return False
