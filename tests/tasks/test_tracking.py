"""MLflow tracking on a real SQLite store in a temporary folder (no Prefect, no Ray)."""

from __future__ import annotations

import json

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
        cb.on_train_end({"steps": 4, "training_log": str(out / "training_log.jsonl"), "last": {"loss": 0.25}})
        mt.log_evaluation(run_id, {"policy": {"ndcg@10": 0.12, "users": 3}, "popularity": {"ndcg@10": 0.04}})
    run = mt.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[mt.TAG_FLOW_RUN_ID] == "flow-123"
    assert len(run.data.tags[mt.TAG_GIT_COMMIT]) == 40
    assert run.data.params["num_steps"] == "4" and run.data.params["algo.kl_coef"] == "0.1"
    for key in ("loss", "avg_reward", "max_reward", "min_reward", "kl", "gen_len", "time_step"):
        history = mt.client().get_metric_history(run_id, f"train/{key}")
        assert [m.step for m in history] == [0, 1, 2, 3], key
    assert run.data.metrics["evaluation/policy/ndcg_at_10"] == pytest.approx(0.12)
    assert run.data.metrics["train_summary/last/loss"] == pytest.approx(0.25)
    files = {f.path for d in ("training", "plots", "evaluation") for f in mt.client().list_artifacts(run_id, d)}
    assert {"training/training_log.jsonl", "plots/reward_curve.png", "evaluation/evaluation.json",
            "evaluation/evaluation.md"} <= files
    table = open(mt.client().download_artifacts(run_id, "evaluation/evaluation.md", str(store))).read().splitlines()
    assert table[1].split() == ["method", "ndcg@10", "users"] and table[3].split() == ["policy", "0.1200", "3"]
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


def test_metric_names_and_values_are_made_acceptable():
    assert mt.metric_name("ndcg@10") == "ndcg_at_10"
    nums = mt.numeric_items({"a": 1, "b": True, "c": "x", "d": float("nan"), "e": 2.5})
    assert nums == {"a": 1.0, "e": 2.5}
