"""The pipeline flow end to end on a real Prefect API, a real local Ray and a real MLflow SQLite store,
with the dummy policy on a tiny dataset of real MovieLens titles."""

from __future__ import annotations

import json

import pytest

from tasks import registry
from tasks import tracking as mt
from tests.helpers.flows import QUICK, actor_exists, flow_artifacts, groups, task_runs

EXPECTED_TASKS = {"prepare_dataset", "generate_item_embeddings", "tune_retrieval", "start_retrieval_service",
                  "train_policy", "evaluate_policy", "evaluate_baselines", "register_model", "promote_model"}


@pytest.mark.slow
def test_pipeline_end_to_end(flow_env, monkeypatch):
    from flows.pipeline import pipeline_flow

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "2")  # samples within a short run

    out = pipeline_flow(**groups(**QUICK, experiment="pipeline-test", actor_name=flow_env["actor"]))

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
    assert all(run.data.tags.get(t) for t in (mt.TAG_GIT_COMMIT, mt.TAG_SOURCE_NAME, mt.TAG_USER))
    # every setting as one tree: dotted names
    assert run.data.params["trainer.num_steps"] == "4" and run.data.params["run.dataset_name"] == "tiny-ml"
    assert run.data.params["algorithm.reward"] == "log_rank" and run.data.params["policy.policy"] == "dummy"
    assert run.data.params["algorithm.learning_rate"] == "0.05"  # the dummy policy's default, not "None"
    assert not any(k.startswith("train_summary/last") for k in run.data.metrics)  # the steps hold those
    for key in ("loss", "avg_reward", "max_reward", "min_reward", "kl", "gen_len", "time_step"):
        assert [m.step for m in c.get_metric_history(run.info.run_id, f"train/{key}")] == [0, 1, 2, 3], key
    for model in ("policy", "untrained", "popularity", "echo", "echo+prior"):
        assert mt.metric_name(f"eval_test/{model}/ndcg@10") in run.data.metrics, model
    # the tuned scorer is recorded, and every policy figure names it
    assert run.data.tags["rl4rec.scorer"].startswith(("hybrid(", "cosine")) and "retrieval/valid/ndcg_at_10" in run.data.metrics
    assert out["evaluation"]["policy"]["scorer"] == out["scorer"] == run.data.tags["rl4rec.scorer"]
    assert {(r["a"], r["b"]) for r in out["intervals"]} >= {("policy", "untrained"), ("policy", "echo+prior")}
    assert run.data.metrics["eval_test/policy/ndcg_at_10"] == pytest.approx(out["evaluation"]["policy"]["ndcg@10"])
    paths = {f.path for d in ("training", "plots", "eval_test") for f in c.list_artifacts(run.info.run_id, d)}
    assert "settings.json" in {f.path for f in c.list_artifacts(run.info.run_id)}  # the settings tree
    assert {"training/training_log.jsonl", "plots/reward_curve.png", "eval_test/eval_test.json"} <= paths
    # the final checkpoint is kept once: in the registered model, not also as a run artifact
    assert not c.list_artifacts(run.info.run_id, "checkpoints")

    # the registered version, with both aliases (the first model becomes champion)
    assert out["model_name"] == "rl4rec-tiny-ml" and out["promoted"]
    assert registry.alias_version("rl4rec-tiny-ml", "challenger") == out["version"]
    assert registry.alias_version("rl4rec-tiny-ml", "champion") == out["version"]
    version = mt.client().get_model_version("rl4rec-tiny-ml", str(out["version"]))
    assert version.tags["rl4rec.scorer"] == out["scorer"]

    # lineage (tasks/lineage.py): the splits it read as MLflow datasets, system metrics, no "None" parameter,
    # the policy's test figures as metrics of the logged model the version points at, and no version tag
    # repeating them or the run id (the version has run_id)
    contexts = {d.dataset.name: {t.key: t.value for t in d.tags}["mlflow.data.context"]
                for d in run.inputs.dataset_inputs}
    assert contexts == {"tiny-ml-train": "training", "tiny-ml-valid": "validation", "tiny-ml-test": "testing"}
    assert any(k.startswith("system/") for k in run.data.metrics)
    assert "None" not in run.data.params.values() and "policy.init_from" not in run.data.params
    assert version.run_id == out["mlflow_run_id"] and version.source.startswith("models:/m-")
    model = c.get_logged_model(version.source.removeprefix("models:/"))
    figures = {m.key: (m.value, m.dataset_name) for m in model.metrics}
    assert figures["ndcg_at_10"] == (pytest.approx(out["evaluation"]["policy"]["ndcg@10"]), "tiny-ml-test")
    assert not any(k.startswith("rl4rec.eval.") or k == "mlflow_run_id" for k in version.tags)
    model = registry.load_policy_by_alias("rl4rec-tiny-ml", "champion")
    answers = model.predict([{"history": ["Alien"]}, {"history": ["Unforgiven", "Tombstone"], "k": 3}])
    assert all(isinstance(a.text, str) and a.text for a in answers) and len(answers[1].item_ids) == 3

    # Prefect artifacts of the flow run: the MLflow link, the evaluation table, training progress at 100%
    arts = flow_artifacts(out["flow_run_id"])
    assert f"/runs/{out['mlflow_run_id']})" in arts["mlflow-run"].data  # a link artifact: "[text](url)"
    table = arts["evaluation-test"]
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    by_model = {r["model"]: r for r in rows}
    assert {"policy", "untrained", "popularity", "echo", "echo+prior"} <= set(by_model)
    assert by_model["policy"]["ndcg@10"] == pytest.approx(out["evaluation"]["policy"]["ndcg@10"], abs=1e-4)
    assert arts["evaluation-test-intervals"].type == "markdown"
    assert arts["training-progress"].type == "progress" and arts["training-progress"].data == 100

    # the actor the flow started is gone
    assert not actor_exists(flow_env["actor"])


@pytest.mark.slow
def test_pipeline_runs_the_recipe_with_an_llm(flow_env, tiny_lm):
    """tune_retrieval -> SFT -> alpha on the SFT texts -> GRPO from SFT -> base/SFT/trained rows, on a tiny LM."""
    import json
    from pathlib import Path

    from flows.pipeline import pipeline_flow

    out = pipeline_flow(**groups(dataset_name="tiny-ml", policy_model=tiny_lm, sft_steps=2, sft_batch_size=4,
                                 num_steps=2, batch_size=4, group_size=2, save_every=2, eval_users=6, max_new_tokens=4,
                                 experiment="recipe-test", actor_name=flow_env["actor"], train_cpus=1))
    names = [r.name.rsplit("-", 1)[0] for r in task_runs(out["flow_run_id"])]
    assert names.count("tune_retrieval") == 2 and names.count("fine_tune_policy") == 1
    assert names.count("evaluate_policy") == 3  # trained, its start (SFT), and the base LLM
    assert {"policy", "untrained", "base", "echo+prior"} <= set(out["evaluation"])
    policy_json = json.loads((Path(out["checkpoint"]) / "policy" / "policy.json").read_text())
    assert policy_json["config"]["policy"]["init_from"] == str((Path(out["start"]) / "policy").resolve())  # from SFT
    assert (Path(out["checkpoint"]) / "retrieval_settings.json").is_file()
    run = mt.client().get_run(out["mlflow_run_id"])
    assert "sft/loss" in run.data.metrics and "retrieval_alpha/valid/ndcg_at_10" in run.data.metrics


@pytest.mark.slow
def test_pipeline_runs_the_fused_recipe_with_sasrec_and_an_llm(flow_env, tiny_lm):
    """SASRec trained (cached) and logged -> SFT on the candidates format -> GRPO on fused rewards -> each policy
    fused with SASRec at the gamma chosen on its validation texts, its text alone, and SASRec alone."""
    from pathlib import Path

    from flows.pipeline import pipeline_flow
    from rl4rec_core.retrieval.fusion_tuning import fusion_path

    out = pipeline_flow(**groups(dataset_name="tiny-ml", policy_model=tiny_lm, base="sasrec", num_candidates=5,
                                 constrained=True, sasrec_max_epochs=2, sasrec_hidden=16, sft_steps=2,
                                 sft_batch_size=4, num_steps=2, batch_size=4, group_size=2, save_every=2, eval_users=6,
                                 max_new_tokens=8, experiment="fused-test", actor_name=flow_env["actor"], train_cpus=1))
    names = [r.name.rsplit("-", 1)[0] for r in task_runs(out["flow_run_id"])]
    assert names.count("train_sasrec") == 1 and names.count("fine_tune_policy") == 1
    assert names.count("evaluate_fused_policy") == 3 and "evaluate_policy" not in names
    rows = out["evaluation"]
    assert {"policy", "policy text", "untrained", "untrained text", "base", "base text", "sasrec"} <= set(rows)
    assert all(rows[r]["users"] == 6 for r in ("policy", "untrained text", "sasrec"))
    pairs = {(i["a"], i["b"]) for i in out["intervals"]}
    assert {("policy", "sasrec"), ("policy", "untrained"), ("policy text", "untrained text")} <= pairs
    # the trained policy's gamma is the dataset's fusion record: what the service and the model serve
    record = json.loads(fusion_path("tiny-ml", "item", "all-MiniLM-L6-v2").read_text())
    log = [json.loads(line) for line in (Path(out["checkpoint"]).parent / "training_log.jsonl").read_text().splitlines()]
    assert all("frac_zero_spread" in step and "names_candidate" in step for step in log)
    run = mt.client().get_run(out["mlflow_run_id"])
    assert any(k.startswith("sasrec") for k in run.data.metrics), sorted(run.data.metrics)
    assert rows["policy"]["gamma"] == record["gamma"] and record["base"]["base"] == "sasrec"
