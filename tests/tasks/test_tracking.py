"""MLflow tracking on a real SQLite store in a temporary folder (no Prefect, no Ray)."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import tracking as mt
from tasks.training_callback import MLflowCallback


def _write_log(folder, steps):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "training_log.jsonl", "w") as f:
        for s in range(steps):
            f.write(json.dumps({"step": s, "loss": 1.0 / (s + 1), "avg_reward": 0.1 * s,
                                "max_reward": 0.2 * s, "min_reward": 0.0, "kl": 0.01 * s,
                                "gen_len": 6.0, "time_step": 0.05}) + "\n")


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(mt.__file__).parent, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_store_lives_in_mlruns_with_artifacts_beside_it(store):
    exp_id = mt.ensure_experiment("rl4rec-test")
    exp = mt.client().get_experiment(exp_id)
    assert (store / "mlruns" / "mlflow.db").is_file()
    assert exp.artifact_location == (store / "mlruns" / "artifacts" / "rl4rec-test").as_uri()
    assert exp.tags[mt.TAG_EXPERIMENT_KIND] == "custom_model_development"  # runs, not GenAI traces, in the UI
    # an experiment made elsewhere without the tag gets it on first use
    other = mt.client().create_experiment("made-elsewhere")
    assert mt.ensure_experiment("made-elsewhere") == other
    assert mt.client().get_experiment(other).tags[mt.TAG_EXPERIMENT_KIND] == "custom_model_development"


def test_run_tags_params_and_callback_metrics_artifacts(store):
    out = store / "train_out"
    _write_log(out, 4)
    (out / "checkpoint_final" / "policy").mkdir(parents=True)
    (out / "checkpoint_final" / "policy" / "state.txt").write_text("weights")
    with mt.tracked_run(run_name="t", params={"num_steps": 4, "algo": {"kl_coef": 0.1}},
                        flow_run_id="flow-123", flow_name="f", experiment="rl4rec-test") as run_id:
        cb = MLflowCallback(run_id)
        for rec in map(json.loads, (out / "training_log.jsonl").read_text().splitlines()):
            cb.on_step_end(rec["step"], rec)
        cb.on_checkpoint(4, out / "checkpoint_final")
        cb.on_train_end({"steps": 4, "resumed_from": None, "training_log": str(out / "training_log.jsonl"),
                         "last": {"loss": 0.25}, "first_avg_reward": 0.0, "last_avg_reward": 0.3})
        mt.log_evaluation(run_id, {"policy": {"ndcg@10": 0.12, "users": 3}, "popularity": {"ndcg@10": 0.04}})
    run = mt.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[mt.TAG_FLOW_RUN_ID] == "flow-123"
    # what mlflow.start_run fills: Source, user, source type, and the commit of the code that runs (pytest
    # lies in a git-ignored .venv, so MLflow alone would give none)
    assert run.data.tags[mt.TAG_SOURCE_NAME] == sys.argv[0] and run.data.tags[mt.TAG_USER] == getpass.getuser()
    assert run.data.tags["mlflow.source.type"] == "LOCAL" and run.data.tags["mlflow.runName"] == "t"
    assert run.data.tags[mt.TAG_GIT_COMMIT] == _head()
    assert run.data.params["num_steps"] == "4" and run.data.params["algo.kl_coef"] == "0.1"
    for key in ("loss", "avg_reward", "max_reward", "min_reward", "kl", "gen_len", "time_step"):
        history = mt.client().get_metric_history(run_id, f"train/{key}")
        assert [m.step for m in history] == [0, 1, 2, 3], key
    assert run.data.metrics["evaluation/policy/ndcg_at_10"] == pytest.approx(0.12)
    # the summary adds what the steps do not hold, never the last step's stats again
    summary = {k for k in run.data.metrics if k.startswith("train_summary/")}
    assert summary == {"train_summary/steps", "train_summary/first_avg_reward"}
    files = {f.path for d in ("training", "plots", "evaluation") for f in mt.client().list_artifacts(run_id, d)}
    assert {"training/training_log.jsonl", "plots/reward_curve.png", "evaluation/evaluation.json"} <= files
    png = open(mt.client().download_artifacts(run_id, "plots/reward_curve.png", str(store)), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the evaluation as an MLflow table (log_table: "split" JSON, listed in the run's logged artifacts)
    table = json.load(open(mt.client().download_artifacts(run_id, "evaluation/evaluation.json", str(store))))
    assert table["columns"] == ["model", "ndcg@10", "users"]
    assert table["data"] == [["policy", 0.12, 3.0], ["popularity", 0.04, None]]
    logged = json.loads(run.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "evaluation/evaluation.json", "type": "table"} in logged
    ckpt = [f.path for f in mt.client().list_artifacts(run_id, "checkpoints/checkpoint_final/policy")]
    assert ckpt == ["checkpoints/checkpoint_final/policy/state.txt"]


def test_failure_marks_run_failed_and_keeps_what_was_logged(store):
    with pytest.raises(RuntimeError, match="boom"):
        with mt.tracked_run(run_name="fails", params={"num_steps": 10}, experiment="rl4rec-test") as run_id:
            cb = MLflowCallback(run_id)
            cb.on_step_end(0, {"loss": 0.5, "avg_reward": 0.2})
            cb.on_step_end(1, {"loss": 0.4, "avg_reward": 0.3})
            raise RuntimeError("boom")
    run = mt.client().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.params == {"num_steps": "10"}
    assert [m.value for m in mt.client().get_metric_history(run_id, "train/avg_reward")] == [0.2, 0.3]
    assert "boom" in run.data.tags["rl4rec.error"]
    assert mt.TAG_SOURCE_NAME in run.data.tags and mt.TAG_USER in run.data.tags


def test_interrupt_marks_run_killed_and_no_run_is_left_active(store):
    import mlflow

    with pytest.raises(KeyboardInterrupt):
        with mt.tracked_run(run_name="stopped", experiment="rl4rec-test") as run_id:
            assert mlflow.active_run() is None  # tasks/registry.py may resume the run with mlflow.start_run
            raise KeyboardInterrupt
    assert mt.client().get_run(run_id).info.status == "KILLED"


def test_flow_run_logs_the_learning_rate_that_applies(store, monkeypatch):
    from flows import artifacts, stages
    from flows.params import FlowParams
    from rl4rec_core.settings import AlgorithmSettings, PolicySettings, TrackingSettings

    monkeypatch.setattr(artifacts, "link_mlflow_run", lambda *a: None)  # a Prefect artifact: no API here
    tracking = TrackingSettings(experiment="rl4rec-test")
    for algorithm, expected in ((AlgorithmSettings(), "0.05"), (AlgorithmSettings(learning_rate=0.01), "0.01")):
        p = FlowParams.of(policy=PolicySettings(policy="dummy"), algorithm=algorithm, tracking=tracking)
        with stages.mlflow_run(p, "lr-test") as run_id:
            pass
        assert mt.client().get_run(run_id).data.params["algorithm.learning_rate"] == expected  # never "None"


def test_evaluation_with_paired_intervals_and_embeddings_sidecar(store):
    emb = store / "emb" / "tiny_item_model.pt"
    emb.parent.mkdir()
    emb.with_suffix(".json").write_text("{}")
    intervals = [{"a": "policy", "b": "popularity", "metric": "ndcg@10", "diff": 0.02, "lo": -0.01, "hi": 0.05}]
    with mt.tracked_run(run_name="eval", experiment="rl4rec-test") as run_id:
        mt.record_evaluation(run_id, {"policy": {"ndcg@10": 0.12}}, intervals, split="valid")
        mt.record_embeddings(run_id, emb)
    metrics = mt.client().get_run(run_id).data.metrics
    assert metrics["eval_valid/policy/ndcg_at_10"] == pytest.approx(0.12)
    assert metrics["eval_valid_paired/policy-popularity/ndcg_at_10/lo"] == pytest.approx(-0.01)
    assert [f.path for f in mt.client().list_artifacts(run_id, "embeddings")] == ["embeddings/tiny_item_model.json"]
    table = json.load(open(mt.client().download_artifacts(run_id, "eval_valid/paired_intervals.json", str(store))))
    assert table["columns"] == ["a", "b", "metric", "diff", "lo", "hi"]
    assert table["data"] == [["policy", "popularity", "ndcg@10", 0.02, -0.01, 0.05]]


def test_metric_names_and_values_are_made_acceptable():
    assert mt.metric_name("ndcg@10") == "ndcg_at_10"
    nums = mt.numeric_items({"a": 1, "b": True, "c": "x", "d": float("nan"), "e": 2.5})
    assert nums == {"a": 1.0, "e": 2.5}
