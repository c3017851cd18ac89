"""Shared fixtures: every test writes inside its own temporary folders, never into the repo."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `auto` picks vLLM for an encoder on a GPU where it is installed, and every GPU test would pay its engine
# start-up; the vLLM tests ask for it by name instead
os.environ.setdefault("RL4REC_EMB_BACKEND", "sentence-transformers")


@pytest.fixture
def rl4rec_dirs(tmp_path, monkeypatch):
    """Point data, embeddings and checkpoints at a temporary folder (the wheel cache stays shared)."""
    dirs = {
        "data": tmp_path / "data",
        "emb": tmp_path / "data_emb",
        "ckpt": tmp_path / "checkpoints",
    }
    monkeypatch.setenv("RL4REC_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("RL4REC_EMB_DIR", str(dirs["emb"]))
    monkeypatch.setenv("RL4REC_CHECKPOINT_ROOT", str(dirs["ckpt"]))
    return dirs


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole test session (2 logical CPUs, no dashboard), started as the
    project starts its own: bound to 127.0.0.1, with Ray's token authentication (rl4rec_core/ray_access.py)."""
    import ray

    from rl4rec_core.ray_access import init_ray

    if not ray.is_initialized():
        # "local": a fresh instance, never another process's `ray start --head` cluster found on the machine
        init_ray("local", num_cpus=2, include_dashboard=False, namespace="rl4rec", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def prefect_api():
    """One real Prefect API (a temporary server) shared by every test that needs it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow SQLite store per test module (a fresh one costs seconds of schema migration)."""
    from tasks import tracking as mt

    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = mt.default_tracking_uri(tmp_path / "mlruns")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mt.configure_mlflow(uri)
        yield tmp_path


@pytest.fixture
def tiny(rl4rec_dirs):
    """The tiny real-movie dataset of tests/helpers/tiny_recdata.py, prepared in the test's data folder."""
    from rl4rec_core.data import load_dataset
    from tests.helpers.tiny_recdata import write_tiny_dataset

    return load_dataset(write_tiny_dataset(rl4rec_dirs["data"]))


@pytest.fixture
def service(tiny):
    """A plain RetrievalService over ``tiny`` with a deterministic word-vector encoder."""
    from tests.helpers.tiny_recdata import WordVectorEncoder, make_service

    return make_service(tiny, WordVectorEncoder())


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: the machine's cores are shared, and a tiny model is fastest so."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """Folder of a tiny random Llama with a chat-template tokenizer, built locally (tests/helpers/tiny_lm.py)."""
    from tests.helpers.tiny_lm import make_tiny_lm

    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))
