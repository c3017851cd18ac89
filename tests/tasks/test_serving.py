"""The registered policy served by MLflow's scoring server: a dummy policy trained on the tiny real-movie
dataset, its catalogue embedded with the real all-MiniLM-L6-v2, registered on a real SQLite store with its
tuned retrieval settings and test figures (metrics of its logged model), then asked for recommendations over HTTP (JSON ``inputs``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tasks import registry
from tasks import tracking as mt

NAME = "rl4rec-serving-test"


@pytest.fixture(scope="module")
def served(store, tmp_path_factory):
    """``(model_uri, dataset titles, register_model's answer)`` of a registered champion with a catalogue."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.encoders import make_encoder
    from rl4rec_core.policy.config import PolicyConfig
    from rl4rec_core.policy.dummy import DummyRecPolicy
    from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval, save_tuned
    from rl4rec_core.checkpoints import save_checkpoint
    from tests.helpers.embeddings import MODEL, data_dirs, write_embeddings
    from tests.helpers.tiny_recdata import write_tiny_dataset

    root = tmp_path_factory.mktemp("serving")
    with data_dirs(root):
        ds = load_dataset(write_tiny_dataset(root / "data"))
        texts = [f"{r.title} ({r.year}). Genres: {r.genres}" for r in ds.items.itertuples()]
        write_embeddings(ds.name, make_encoder(MODEL).encode(texts))
        config = PolicyConfig.from_fields(policy="dummy", seed=0, kl_coef=0.0)
        policy = DummyRecPolicy.from_item_texts(list(ds.item_titles), config)
        ckpt = save_checkpoint(root / "ckpt" / "checkpoint_final", policy, {"step": 0},
                               {"policy": {"policy": "dummy"}, "run": {"dataset_name": ds.name},
                                "retrieval": {"emb_model_name": MODEL, "emb_type": "item"}})
        tuned = TunedRetrieval(ds.name, HybridWeights(beta=0.05), [1] * len(ds.item_titles), {"ndcg@10": 0.1})
        settings = save_tuned(root / "retrieval.json", tuned, MODEL, "item")
        with mt.tracked_run(run_name="serve", experiment="rl4rec-test") as run_id:
            reg = registry.register_model.fn(run_id, str(ckpt), NAME, alias=registry.CHAMPION,
                                             retrieval_settings=str(settings),
                                             evaluation={"policy": {"ndcg@10": 0.0625, "scorer": "hybrid"},
                                                         "popularity": {"hit@10": 0.25}})
    return f"models:/{NAME}@{registry.CHAMPION}", list(ds.item_titles), reg


def test_the_version_records_retrieval_settings_and_test_figures(served):
    _, _, reg = served
    version = mt.client().get_model_version(NAME, str(reg["version"]))
    assert version.tags["rl4rec.scorer"].startswith("hybrid(") and json.loads(version.tags["rl4rec.retrieval_settings"])
    # the policy's test figures are metrics of the logged model (not version tags); baselines stay in the run
    figures = {m.key: m.value for m in mt.client().get_logged_model(reg["model_id"]).metrics}
    assert figures == {"ndcg_at_10": 0.0625}
    assert not any(k.startswith("rl4rec.eval.") for k in version.tags)
    assert "ndcg_at_10 0.0625" in version.description and "hybrid(" in version.description


def test_the_model_has_a_signature_an_example_and_pinned_requirements(served):
    import mlflow

    uri, _, _ = served
    info = mlflow.models.get_model_info(uri)
    inputs = info.signature.inputs.to_dict()
    fields = inputs[0]["properties"]
    assert fields["history"]["type"] == "array" and fields["history"]["items"]["type"] == "string"
    assert fields["k"]["required"] is False
    outputs = info.signature.outputs.to_dict()[0]["properties"]
    assert set(outputs) == {"text", "item_ids", "titles", "scores", "unknown"}
    assert [p.name for p in info.signature.params.params] == ["greedy"]
    local = mlflow.artifacts.download_artifacts(uri)
    reqs = open(os.path.join(local, "requirements.txt")).read().split()
    assert all("==" in r for r in reqs if not r.startswith("-")), reqs
    assert any(r.startswith("mlflow==") for r in reqs) and any(r.startswith("sentence-transformers==") for r in reqs)
    assert {"rl4rec_core", "tasks"} <= set(os.listdir(os.path.join(local, "code")))
    assert json.load(open(os.path.join(local, info.saved_input_example_info["artifact_path"])))["inputs"]


def test_the_scoring_server_answers_a_json_request(served):
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    uri, titles, _ = served
    app = scoring_server.init(mlflow.pyfunc.load_model(uri))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/ping").status_code == 200
        body = {"inputs": [{"history": ["Unforgiven", "Tombstone"], "k": 3}, {"history": ["Alien"]}],
                "params": {"greedy": True}}
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, r.text
        first, second = r.json()["predictions"]
        bad = client.post("/invocations", json={"inputs": [{"k": 2}]})
    assert len(first["item_ids"]) == len(first["titles"]) == len(first["scores"]) == 3
    assert len(second["item_ids"]) == registry_default_k(len(titles))
    assert first["titles"] == [titles[i] for i in first["item_ids"]]
    assert not {"Unforgiven", "Tombstone"} & set(first["titles"])  # the history is masked
    assert first["scores"] == sorted(first["scores"], reverse=True) and isinstance(first["text"], str)
    assert bad.status_code == 400 and "history" in bad.text


def registry_default_k(num_items: int) -> int:
    from tasks.serving import DEFAULT_K

    return min(DEFAULT_K, num_items)


def test_the_model_loads_where_rl4rec_is_not_installed(served, tmp_path):
    """A fresh interpreter without the editable install's finder and outside the repo cannot import
    rl4rec, yet loads the model (its code travels in ``code/``) and recommends."""
    uri, _, _ = served
    script = textwrap.dedent(f"""
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
        sys.path[:] = [p for p in sys.path if p not in ("", {os.getcwd()!r})]
        try:
            import tasks
            sys.exit("rl4rec is importable: " + tasks.__file__)
        except ImportError:
            pass
        import mlflow
        model = mlflow.pyfunc.load_model({uri!r})
        [answer] = model.predict([{{"history": ["Carrie"], "k": 2}}])
        print(type(model.unwrap_python_model()).__module__, answer.titles, sys.modules["tasks"].__file__)
    """)
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    module, *rest = out.stdout.split()
    assert module == "tasks.serving" and "/code/tasks/" in out.stdout, out.stdout


def test_the_pickled_model_holds_no_loaded_policy_or_encoder(served):
    """MLflow may run the model on its input example before pickling it: what load_context built (the policy,
    the catalogue with its encoder, unpicklable under vLLM) stays out of python_model.pkl."""
    import threading

    import cloudpickle
    import mlflow

    from tasks.serving import PolicyModel

    model = PolicyModel()
    model.policy, model.catalogue, model.kept = threading.Lock(), threading.Lock(), 1  # locks cannot be pickled
    restored = cloudpickle.loads(cloudpickle.dumps(model))
    assert restored.kept == 1 and not hasattr(restored, "policy") and not hasattr(restored, "catalogue")
    uri, _, _ = served
    folder = mlflow.artifacts.download_artifacts(uri)
    with open(os.path.join(folder, "python_model.pkl"), "rb") as f:
        logged = cloudpickle.load(f)
    assert not hasattr(logged, "policy") and not hasattr(logged, "catalogue")


# ---- issue 22: the history as clients write it, k checked before any generation, no stack trace to a client
def _post(served, body):
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(served[0])
    with TestClient(scoring_server.init(model), base_url="http://127.0.0.1") as client:
        return client.post("/invocations", json=body), model


def test_titles_match_with_or_without_the_year_and_ids_too(served):
    """The documented request writes `Title (Year)`; the catalogue stores the title and the year apart. Every
    history entry, in either form or as a catalogue id, is masked; one that names nothing is reported."""
    _, titles, _ = served
    n = len(titles)
    body = {"inputs": [{"history": ["Unforgiven (1992)", "tombstone"], "k": n},
                       {"history": ["No Such Film (1999)", "Unforgiven (1969)"], "history_ids": [titles.index("Alien"), 10**9],
                        "k": n}],
            "params": {"greedy": True}}
    r, _ = _post(served, body)
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert first["unknown"] == [] and len(first["titles"]) == n - 2  # before: Unforgiven recommended back
    assert not {"Unforgiven", "Tombstone"} & set(first["titles"])
    assert "Alien" not in second["titles"] and "Unforgiven" in second["titles"]  # 1969 is not its year
    assert second["unknown"] == [str(10**9), "No Such Film (1999)", "Unforgiven (1969)"]


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_1_is_refused_by_the_request_type_without_a_stack_trace(served, k):
    r, model = _post(served, {"inputs": [{"history": ["Alien"], "k": k}]})
    assert r.status_code == 400 and "greater than or equal to 1" in r.text
    assert "stack_trace" not in r.json() and "Traceback" not in r.text and 'File "' not in r.text


def test_a_huge_k_gives_the_whole_catalogue(served):
    _, titles, _ = served
    r, _ = _post(served, {"inputs": [{"history": ["Alien"], "k": 2**62}]})
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"][0]["item_ids"]) == len(titles) - 1  # all but the masked one


def test_a_failure_inside_predict_reaches_the_client_as_one_line(served):
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(served[0])
    model.unwrap_python_model().policy = None  # as if the policy failed to generate
    with TestClient(scoring_server.init(model), base_url="http://127.0.0.1") as client:
        r = client.post("/invocations", json={"inputs": [{"history": ["Alien"]}]})
    # MLflow's server puts "Failed to predict data '<input>'. \nError: " before the model's own message
    ours = r.json()["message"].split("\nError: ", 1)[-1]
    assert r.status_code == 500 and ours.startswith("recommendation failed: AttributeError") and "\n" not in ours
    assert "stack_trace" not in r.json() and "Traceback" not in r.text


def test_logging_a_model_loads_its_policy_once(tmp_path, monkeypatch):
    """mlflow.pyfunc.log_model loads the model twice (predict on the input example, then the saved copy);
    within serving.load_once the copy, whose files have the same content, reuses the first load."""
    import shutil

    from mlflow.pyfunc import PythonModelContext

    from rl4rec_core.checkpoints import save_checkpoint
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation import policy_eval
    from rl4rec_core.policy.config import PolicyConfig
    from rl4rec_core.policy.dummy import DummyRecPolicy
    from tasks import serving
    from tests.helpers.embeddings import data_dirs
    from tests.helpers.tiny_recdata import write_tiny_dataset

    with data_dirs(tmp_path):
        ds = load_dataset(write_tiny_dataset(tmp_path / "data"))
    policy = DummyRecPolicy.from_item_texts(list(ds.item_titles), PolicyConfig.from_fields(policy="dummy", seed=0))
    ckpt = save_checkpoint(tmp_path / "ckpt" / "checkpoint_final", policy, {"step": 0},
                           {"policy": {"policy": "dummy"}, "run": {"dataset_name": ds.name}})
    copy = shutil.copytree(ckpt, tmp_path / "saved_model" / "artifacts" / "checkpoint")
    loads = []
    original = policy_eval.load_policy
    monkeypatch.setattr(policy_eval, "load_policy", lambda *a, **k: loads.append(a) or original(*a, **k))

    def load(folder):
        model = serving.PolicyModel()
        model.load_context(PythonModelContext({"checkpoint": str(folder)}, None))
        return model

    with serving.load_once():
        first, second = load(ckpt), load(copy)
    assert len(loads) == 1 and second.policy is first.policy and second.catalogue is None
    assert load(copy).policy is not first.policy and len(loads) == 2  # outside the block: loaded as always
