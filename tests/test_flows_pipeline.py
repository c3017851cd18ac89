"""The pipeline flow end to end on a real Prefect API, a real local Ray and a real MLflow SQLite store,
with the dummy policy on a tiny dataset of real MovieLens titles."""

from __future__ import annotations

import pytest

from flow_helpers import QUICK, actor_exists, flow_env, task_runs  # noqa: F401 (fixture)
from tasks import mlflow_tracking as mt
from tasks import registry

EXPECTED_TASKS = {"prepare_dataset", "generate_item_embeddings", "start_retrieval_service", "train_policy",
                  "evaluate_policy", "evaluate_baselines", "register_model", "promote_model"}


@pytest.mark.slow
def test_pipeline_end_to_end(flow_env):
    from flows.pipeline import pipeline_flow

    out = pipeline_flow(**QUICK, experiment="pipeline-test", actor_name=flow_env["actor"])

    # every task ran on Ray and reported to the same Prefect API as its flow run
    runs = task_runs(out["flow_run_id"])
    names = {r.name.rsplit("-", 1)[0] for r in runs}
    assert EXPECTED_TASKS <= names
    assert all(r.state_type.value == "COMPLETED" for r in runs), [(r.name, r.state_type) for r in runs]
    assert len([r for r in runs if r.name.startswith("evaluate_policy")]) == 2  # trained + untrained

    # one MLflow run for the flow run: tags, parameters, per-step metrics, artifacts, evaluation
    c = mt.client()
    run = c.get_run(out["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags[mt.TAG_FLOW_RUN_ID] == out["flow_run_id"]
    assert run.data.tags.get(mt.TAG_GIT_COMMIT)
    assert run.data.params["num_steps"] == "4" and run.data.params["dataset"] == "tiny-ml"
    assert run.data.params["reward"] == "ndcg@10" and run.data.params["use_dummy"] == "True"
    for key in ("loss", "avg_reward", "max_reward", "min_reward", "kl", "gen_len", "time_step"):
        assert [m.step for m in c.get_metric_history(run.info.run_id, f"train/{key}")] == [0, 1, 2, 3], key
    for model in ("policy", "untrained", "popularity", "echo"):
        assert f"eval_test/{model}/ndcg_at_10" in run.data.metrics
    assert run.data.metrics["eval_test/policy/ndcg_at_10"] == pytest.approx(out["evaluation"]["policy"]["ndcg@10"])
    paths = {f.path for d in ("training", "plots", "eval_test", "checkpoints/checkpoint_final")
             for f in c.list_artifacts(run.info.run_id, d)}
    assert {"training/training_log.jsonl", "plots/reward_curve.png", "eval_test/eval_test.json",
            "checkpoints/checkpoint_final/policy", "checkpoints/checkpoint_final/trainer_state.json"} <= paths

    # the registered version, with both aliases (the first model becomes champion)
    assert out["model_name"] == "rl4rec-tiny-ml" and out["promoted"]
    assert registry.alias_version("rl4rec-tiny-ml", "challenger") == out["version"]
    assert registry.alias_version("rl4rec-tiny-ml", "champion") == out["version"]
    model = registry.load_policy_by_alias("rl4rec-tiny-ml", "champion")
    assert all(isinstance(t, str) and t for t in model.predict([["Alien"], ["Unforgiven", "Tombstone"]]))

    # the actor the flow started is gone
    assert not actor_exists(flow_env["actor"])
