"""The partial flows: embeddings only, training (+ registration) only, evaluation of a registered alias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks import registry
from tasks import tracking as mt
from tests.helpers.flows import QUICK, actor_exists, groups


@pytest.mark.slow
def test_embedding_training_and_evaluation_flows(flow_env):
    from flows.pipeline import embedding_flow, evaluation_flow, training_flow

    path = embedding_flow(**groups(embedding_flow, dataset_name="tiny-ml", experiment="parts"))
    sidecar = json.loads(Path(path).with_suffix(".json").read_text())
    assert sidecar["num_items"] == 24 and Path(path).is_file()

    train_params = {k: QUICK[k] for k in ("dataset_name", "policy", "num_steps", "batch_size", "group_size")}
    trained = training_flow(**groups(training_flow, **train_params, model_name="parts-{dataset}", experiment="parts",
                                     actor_name=flow_env["actor"]))
    assert trained["registered"]["version"] == 1
    assert registry.alias_version("parts-tiny-ml", "challenger") == 1
    assert registry.alias_version("parts-tiny-ml", "champion") is None  # training alone never promotes
    run = mt.client().get_run(trained["mlflow_run_id"])
    assert [m.step for m in mt.client().get_metric_history(run.info.run_id, "train/avg_reward")] == [0, 1, 2, 3]

    results = evaluation_flow(**groups(evaluation_flow, dataset_name="tiny-ml", model_name="parts-{dataset}",
                                       eval_split="valid", eval_users=None, baselines=["popularity"],
                                       experiment="parts", actor_name=flow_env["actor"]), alias="challenger")
    assert set(results) == {"policy", "untrained", "popularity"}
    assert results["policy"]["users"] == 36
    assert not actor_exists(flow_env["actor"])
