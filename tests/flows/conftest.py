"""The flow tests' fixture: a tiny prepared dataset, a temporary MLflow store, a fresh actor name."""

from __future__ import annotations

import uuid

import pytest

from tasks import tracking as mt
from tasks.caching import RESULTS_ENV
from tests.helpers.tiny_recdata import write_tiny_dataset


@pytest.fixture
def flow_env(rl4rec_dirs, tmp_path, monkeypatch, ray_local, prefect_api):
    """Everything a flow needs, inside tmp_path; a unique actor name so tests never share an actor."""
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "prefect-results"))  # cached task results
    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    uri = mt.default_tracking_uri(tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mt.configure_mlflow(uri)
    return {"dirs": rl4rec_dirs, "actor": f"RetrievalService-{uuid.uuid4().hex[:8]}", "tmp": tmp_path}
