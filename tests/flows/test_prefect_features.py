"""What Prefect users expect of a flow run, read back from a real Prefect API: the idempotent tasks are
cached across flow runs (and run again when their output changed), and flow runs carry artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.flows import flow_artifacts, groups, task_runs


def states(flow_run_id) -> dict[str, str]:
    return {r.name.rsplit("-", 1)[0]: r.state.name for r in task_runs(flow_run_id)}


@pytest.mark.slow
def test_prepare_and_embed_are_cached_until_their_output_changes(flow_env):
    from flows.pipeline import embedding_flow

    params = groups(embedding_flow, dataset_name="tiny-ml", experiment="cache-test")
    first = embedding_flow(**params, return_state=True)
    path = Path(first.result())
    second = embedding_flow(**params, return_state=True)
    assert second.result() == str(path)
    before, after = states(first.state_details.flow_run_id), states(second.state_details.flow_run_id)
    assert before == {"prepare_dataset": "Completed", "generate_item_embeddings": "Completed"}
    assert after == {"prepare_dataset": "Cached", "generate_item_embeddings": "Cached"}

    # a changed output is never a hit: the embeddings are written again, the dataset is still cached
    path.write_bytes(b"not a tensor")
    third = embedding_flow(**params, return_state=True)
    assert states(third.state_details.flow_run_id) == {"prepare_dataset": "Cached",
                                                        "generate_item_embeddings": "Completed"}
    import torch

    assert torch.load(path).shape[0] == 24

    # every flow run links its MLflow run (Prefect stores a link artifact as markdown "[text](url)")
    link = flow_artifacts(second.state_details.flow_run_id)["mlflow-run"]
    assert link.type == "markdown" and link.data.startswith("[MLflow run ") and "/#/experiments/" in link.data
