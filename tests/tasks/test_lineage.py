"""MLflow lineage on a real SQLite store in a temporary folder (no Prefect, no Ray): the splits as MLflow
datasets of a run, system metrics, no "None" parameters, the registered policy's figures as metrics of its
logged model (not version tags), and the final checkpoint kept once (in the model)."""

from __future__ import annotations

import json

import pytest

from tasks import lineage, registry
from tasks import tracking as mt
from tasks.training_callback import MLflowCallback


@pytest.fixture
def trained(tiny, tmp_path):
    """A dummy-policy checkpoint of the tiny dataset, as the training task leaves it."""
    from rl4rec_core.checkpoints import save_checkpoint
    from rl4rec_core.policy.config import PolicyConfig
    from rl4rec_core.policy.dummy import DummyRecPolicy

    policy = DummyRecPolicy.from_item_texts(list(tiny.item_titles), PolicyConfig.from_fields(policy="dummy", kl_coef=0.0))
    return save_checkpoint(tmp_path / "out" / "checkpoint_final", policy, {"step": 2},
                           {"policy": {"policy": "dummy"}, "run": {"dataset_name": tiny.name}})


def test_splits_are_datasets_with_a_digest_of_their_rows_and_their_folder_as_source(tiny):
    train, test = lineage.split_dataset(tiny, "train"), lineage.split_dataset(tiny, "test")
    assert (train.name, test.name) == (f"{tiny.name}-train", f"{tiny.name}-test")
    assert train.digest != test.digest and len(train.digest) == 16
    assert train.digest == lineage.split_dataset(tiny, "train").digest  # same rows, same digest
    assert json.loads(train.source.to_json())["uri"] == tiny.folder.resolve().as_uri()
    frame = lineage.split_frame(tiny, "test")
    assert list(frame.columns) == ["user_id", "history", "target"] and len(frame) == tiny.num_users
    # the test target is each user's last item; its history is everything before it
    last = tiny.sequences["items"].iloc[0]
    ids = tiny.items["item_id"].astype(str).tolist()
    assert frame["target"][0] == ids[last[-1]] and frame["history"][0] == [ids[i] for i in last[:-1]]
    # a changed sequence is a new digest
    tiny.sequences.at[0, "items"] = list(reversed(last))
    tiny.__dict__.pop("_seqs", None)
    assert lineage.split_dataset(tiny, "test").digest != test.digest


def test_a_run_records_its_inputs_system_metrics_and_no_none_params(store, tiny, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    with mt.tracked_run(run_name="lineage", experiment="lineage-test",
                        params={"policy": {"init_from": None, "temperature": 0.7}, "evaluation.eval_users": None}) as run_id:
        logged = lineage.log_datasets(run_id, [tiny.name], ["train", "valid", "test"])
        import time

        time.sleep(3)  # a few samples of the 1-second system metrics
    run = mt.client().get_run(run_id)
    inputs = {d.dataset.name: (d.dataset.digest, {t.key: t.value for t in d.tags}) for d in run.inputs.dataset_inputs}
    for split, context in lineage.CONTEXTS.items():
        name = f"{tiny.name}-{split}"
        assert inputs[name] == (logged[name].digest, {"mlflow.data.context": context})
    assert all(d.dataset.source_type == "local" for d in run.inputs.dataset_inputs)
    # unset settings are left out, never the string "None"
    assert run.data.params == {"policy.temperature": "0.7"}
    assert "None" not in run.data.params.values()
    # MLflow's own monitor: CPU and memory of the machine, offline, on SQLite
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system, system


def test_system_metrics_follow_mlflows_switch(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    assert not mt.system_metrics_on() and mt.system_metrics_on(True)
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")
    assert mt.system_metrics_on() and not mt.system_metrics_on(False)


def test_the_registered_policy_carries_its_figures_and_the_checkpoint_once(store, tiny, trained):
    name = "rl4rec-lineage-test"
    evaluation = {"policy": {"ndcg@10": 0.125, "hit@10": 0.25, "users": 36, "scorer": "cosine"},
                  "popularity": {"ndcg@10": 0.05}}
    with mt.tracked_run(run_name="reg", experiment="lineage-test", log_system_metrics=False) as run_id:
        # what the training task does in a flow that registers its policy: no checkpoint as a run artifact
        cb = MLflowCallback(run_id, log_checkpoints="none")
        cb.on_checkpoint(2, trained)
        reg = registry.register_model.fn(run_id, str(trained), name, evaluation=evaluation, eval_split="test",
                                         dataset=tiny.name)
    c = mt.client()
    model = c.get_logged_model(reg["model_id"])
    figures = {m.key: (m.value, m.dataset_name, m.dataset_digest) for m in model.metrics}
    test_digest = lineage.split_dataset(tiny, "test").digest
    assert figures == {"ndcg_at_10": (0.125, f"{tiny.name}-test", test_digest),
                       "hit_at_10": (0.25, f"{tiny.name}-test", test_digest)}
    version = c.get_model_version(name, str(reg["version"]))
    assert version.run_id == run_id and version.source == reg["model_uri"] == f"models:/{reg['model_id']}"
    assert not any(k.startswith("rl4rec.eval.") or k == "mlflow_run_id" for k in version.tags), version.tags
    assert "ndcg_at_10 0.125" in version.description and run_id in version.description
    # the checkpoint lives in the model, not also among the run's artifacts
    assert not c.list_artifacts(run_id, "checkpoints")
    assert registry.version_checkpoint(name, int(reg["version"])).joinpath("trainer_state.json").is_file()
