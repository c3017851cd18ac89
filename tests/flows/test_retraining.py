"""The retraining flow's champion/challenger decision, both ways, on real Prefect + Ray + MLflow."""

from __future__ import annotations

import pytest

from tasks import registry
from tasks import tracking as mt
from tests.helpers.flows import QUICK, groups


@pytest.mark.slow
def test_first_challenger_is_promoted_an_identical_one_is_not(flow_env):
    from flows.retraining import retraining_flow

    params = {k: v for k, v in QUICK.items() if k not in ("save_every", "eval_users")}
    name = "rl4rec-{dataset}-retrain"
    first = retraining_flow(**groups(**params, model_name=name, experiment="retrain", actor_name=flow_env["actor"]))
    assert first["promote"] and first["champion_version_before"] is None
    assert registry.alias_version("rl4rec-tiny-ml-retrain", "champion") == first["challenger_version"]

    # same data, seed and settings: the challenger equals the champion on every validation user,
    # so the interval of the difference is [0, 0] and the champion stays
    second = retraining_flow(**groups(**params, model_name=name, experiment="retrain", actor_name=flow_env["actor"]))
    assert not second["promote"]
    assert second["champion_version_before"] == first["challenger_version"]
    assert second["diff_mean"] == 0.0 and second["ci_low"] == 0.0
    assert registry.alias_version("rl4rec-tiny-ml-retrain", "champion") == first["challenger_version"]
    assert registry.alias_version("rl4rec-tiny-ml-retrain", "challenger") == second["challenger_version"]

    run = mt.client().get_run(second["mlflow_run_id"])
    assert run.data.tags["rl4rec.decision"] == "kept_champion"
    assert "lower bound" in run.data.tags["rl4rec.decision_rule"]
    assert run.data.metrics["decision/promoted"] == 0.0
    assert run.data.metrics["decision/ci_low"] == 0.0
    assert "eval_valid/champion/ndcg_at_10" in run.data.metrics
    assert mt.client().get_run(first["mlflow_run_id"]).data.tags["rl4rec.decision"] == "promoted"
