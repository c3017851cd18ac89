"""Flows reject bad parameters before any work, and a failing task leaves the MLflow run FAILED with
what it had logged so far."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError

from rl4rec_core.errors import ConfigError, MissingArtifactError
from tasks import tracking as mt
from tests.helpers.flows import QUICK, actor_exists, groups, task_runs
from tests.helpers.tiny_recdata import write_tiny_dataset


@pytest.mark.parametrize(
    "override, message",
    [
        ({"dataset_name": "no-such-dataset"}, "unknown dataset 'no-such-dataset'.*rl4rec data prepare"),
        ({"num_steps": -3}, "num_steps must be a positive integer, got -3"),
        ({"reward": "ndcg_at_ten"}, "unknown reward 'ndcg_at_ten'; known rewards"),
        ({"sft_steps": -1}, "sft_steps must be an integer >= 0"),
        ({"sft_steps": 5, "init_from": "x", "policy": "llm"}, "--init_from x: no such folder"),
        ({"policy": "llm", "history_len": 0}, "history_len must be"),
        ({"baselines": ["popularity", "bpr"]}, "unknown baselines"),
    ],
)
def test_bad_parameters_fail_before_any_task(rl4rec_dirs, prefect_api, override, message):
    from flows.pipeline import pipeline_flow

    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    state = pipeline_flow(**groups(**{**QUICK, "experiment": "bad-params", **override}), return_state=True)
    assert state.is_failed()
    # a bad value within a group fails Prefect's parameter validation, one across groups the flow's check
    with pytest.raises((ConfigError, MissingArtifactError, ParameterTypeError), match=message):
        state.result()
    assert task_runs(state.state_details.flow_run_id) == []
    exp = mt.client().get_experiment_by_name("bad-params")
    assert exp is None or mt.client().search_runs([exp.experiment_id]) == []


def test_cli_rejects_bad_flags_without_starting_anything(capsys):
    from flows.cli import main

    assert main(["run", "--quick", "--num_steps", "-1"]) == 2
    err = capsys.readouterr().err
    assert "num_steps must be a positive integer" in err and "Prefect" not in err


@pytest.mark.slow
def test_failing_task_leaves_mlflow_run_failed_with_its_log(flow_env, monkeypatch):
    from flows.pipeline import pipeline_flow

    # the custom reward must import in the Ray workers and in the retrieval actor as well
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # the repository root
    state = pipeline_flow(**groups(**{**QUICK, "num_steps": 6}, reward="tests.helpers.flaky_reward:fails_on_third_call",
                                   experiment="failing-task", actor_name=flow_env["actor"]), return_state=True)
    assert state.is_failed()
    runs = {r.name.rsplit("-", 1)[0]: r.state_type.value for r in task_runs(state.state_details.flow_run_id)}
    assert runs["train_policy"] == "FAILED" and runs["prepare_dataset"] == "COMPLETED"

    c = mt.client()
    [run] = c.search_runs([c.get_experiment_by_name("failing-task").experiment_id])
    assert run.info.status == "FAILED"
    assert "flaky_reward" in run.data.tags["rl4rec.error"]
    assert run.data.params["trainer.num_steps"] == "6"
    # steps 0 and 1 got their rewards before the third call failed: both are still there
    assert [m.step for m in c.get_metric_history(run.info.run_id, "train/avg_reward")] == [0, 1]
    assert [f.path for f in c.list_artifacts(run.info.run_id, "training")] == ["training/training_log.jsonl"]
    assert not actor_exists(flow_env["actor"])
