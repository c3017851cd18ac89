"""The train_sasrec task is cached by Prefect (a repeat is a cache hit; a changed stored model is not), and
log_sasrec records a SASRec in a real MLflow store."""

from __future__ import annotations

import pytest

from tests.helpers.sasrec_data import FAST


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread (conftest's ``one_thread``)."""


def test_train_sasrec_is_a_cache_hit_the_second_time(tiny, rl4rec_dirs, prefect_api, tmp_path, monkeypatch):
    import dataclasses

    from prefect import flow

    from tasks.caching import cached
    from tasks.sasrec import train_sasrec

    monkeypatch.setenv("RL4REC_PREFECT_RESULTS", str(tmp_path / "prefect-results"))

    @flow(name="sasrec-cache-test")
    def train_twice(settings):
        task = cached(train_sasrec)
        first = task(tiny.name, settings, return_state=True)
        second = task(tiny.name, settings, return_state=True)
        return first, second

    first, second = train_twice(FAST)
    assert first.name == "Completed" and second.name == "Cached", (first.name, second.name)
    record = first.result()
    assert not record["reused"] and second.result() == record

    # another model stored meanwhile (other settings): the cached record no longer describes the file
    train_twice(dataclasses.replace(FAST, sasrec_seed=5))
    again, _ = train_twice(FAST)
    assert again.name == "Completed" and again.result()["weights_sha256"] != ""
    assert again.result()["settings"] == dataclasses.asdict(FAST)


def test_log_sasrec_writes_its_params_metrics_and_record_to_mlflow(tiny, store):
    from rl4rec_core.recommenders import ensure_sasrec
    from tasks import tracking as mt
    from tasks.sasrec import log_sasrec

    record = ensure_sasrec(tiny, FAST)
    run_id = mt.start_run("sasrec-log-test")
    log_sasrec(run_id, record)
    log_sasrec(run_id, record, dataset="tiny-ml")  # a run on several datasets names each one
    mt.end_run(run_id)
    run = mt.client().get_run(run_id)
    metrics, params = run.data.metrics, run.data.params
    assert metrics["sasrec.valid_ndcg10"] == pytest.approx(record["valid_ndcg10"])
    assert metrics["sasrec.valid_hit10"] == pytest.approx(record["valid_hit10"])
    assert metrics["sasrec.best_epoch"] == record["best_epoch"] and metrics["sasrec.epochs"] == record["epochs"]
    assert metrics["sasrec.train_seconds"] > 0
    assert metrics["sasrec.tiny-ml.valid_ndcg10"] == pytest.approx(record["valid_ndcg10"])
    assert params["sasrec.sasrec_hidden"] == "16" and params["sasrec.data_digest"] == record["data_digest"]
    assert [a.path for a in mt.client().list_artifacts(run_id, "sasrec")] == ["sasrec/tiny-ml_sasrec.json"]
