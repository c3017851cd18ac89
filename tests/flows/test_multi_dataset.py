"""A run on several datasets through the flows: one actor serves both, training logs each dataset, the
evaluation has a row per dataset and model, MLflow a metric per dataset, the registry the joined name."""

from __future__ import annotations

import pytest

from flows.artifacts import evaluation_rows
from tasks import registry
from tasks import tracking as mt
from tests.helpers.flows import QUICK, actor_exists, groups
from tests.helpers.tiny_amazon import prepare_tiny_amazon
from tests.helpers.tiny_recdata import write_tiny_dataset


def test_rows_of_a_multi_run_get_a_dataset_column():
    rows = evaluation_rows({"policy": {"ndcg@10": 0.1}, "beauty/policy": {"ndcg@10": 0.2, "users": 5}})
    assert rows == [{"model": "policy", "ndcg@10": 0.1},
                    {"dataset": "beauty", "model": "policy", "ndcg@10": 0.2, "users": 5}]


@pytest.mark.slow
def test_training_and_evaluation_flows_on_two_datasets(flow_env):
    from flows.pipeline import evaluation_flow, training_flow

    names = ["tiny-ml", prepare_tiny_amazon(flow_env["tmp"])]
    listed = ",".join(names)
    train_params = {**{k: QUICK[k] for k in ("policy", "num_steps", "batch_size", "group_size")},
                    "dataset_name": listed}
    trained = training_flow(**groups(training_flow, **train_params, model_name="multi-{dataset}",
                                     experiment="multi", actor_name=flow_env["actor"]))
    assert registry.alias_version("multi-tiny-ml+tiny-beauty", "challenger") == 1
    train_metrics = mt.client().get_run(trained["mlflow_run_id"]).data.metrics
    assert all(f"train/users/{n}" in train_metrics for n in names)

    results = evaluation_flow(**groups(evaluation_flow, dataset_name=listed, eval_split="valid", eval_users=None,
                                       baselines=["popularity"], experiment="multi", actor_name=flow_env["actor"]),
                              checkpoint=trained["checkpoint"])
    assert set(results) == {f"{n}/{m}" for n in names for m in ("policy", "untrained", "popularity")}
    assert results["tiny-ml/policy"]["users"] == 36 and results["tiny-beauty/policy"]["users"] == 18
    runs = mt.client().search_runs([mt.client().get_experiment_by_name("multi").experiment_id],
                                   order_by=["attributes.start_time DESC"], max_results=1)
    assert {f"eval_valid/{n}/policy/ndcg_at_10" for n in names} <= set(runs[0].data.metrics)
    assert not actor_exists(flow_env["actor"])


def test_retraining_refuses_a_list_with_the_fix(rl4rec_dirs):
    from flows.retraining import retraining_flow
    from rl4rec_core.errors import ConfigError
    from rl4rec_core.settings import RunSettings

    write_tiny_dataset(rl4rec_dirs["data"], "tiny-a")
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-b")
    with pytest.raises(ConfigError, match="compares challenger and champion on one dataset.*rl4rec ab"):
        retraining_flow.fn(run=RunSettings(dataset_name="tiny-a,tiny-b"))
