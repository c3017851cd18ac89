"""What the flow tests share besides their fixture (``tests/flows/conftest.py``): the quick settings,
a flow's parameters from flat setting names, and reading task runs, artifacts and actors back."""

from __future__ import annotations

# flat setting names, as `rl4rec run`'s flags; `groups(...)` turns them into a flow's parameters
QUICK = dict(dataset_name="tiny-ml", policy="dummy", num_steps=4, batch_size=8, group_size=4, save_every=2,
             eval_users=None)


def groups(flow=None, **flat) -> dict:
    """A flow's settings groups as plain dicts, as a deployment sends them (Prefect validates them)."""
    import inspect

    from rl4rec_core.settings import ALL_GROUPS, split_fields

    names = tuple(ALL_GROUPS) if flow is None else tuple(
        n for n in inspect.signature(flow.fn).parameters if n in ALL_GROUPS)
    return split_fields(flat, {n: ALL_GROUPS[n] for n in names})


def task_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def flow_artifacts(flow_run_id) -> dict:
    """``{key: artifact}`` of a flow run (its tasks' artifacts included)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def actor_exists(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace="rl4rec")
        return True
    except ValueError:
        return False
