"""``tasks/ab.py`` on a real SQLite store: the A/B report logged as a run of its own (``tasks/tracking.py``'s
store and run lifecycle), registry URIs that resolve to nothing or are malformed, and the retraining flow's
copy of the report in its run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.evaluation import ab
from rl4rec_core.evaluation.ab_output import write_report
from tasks import ab as tab
from tasks import tracking as mt


def _report():
    ranks_a, ranks_b = [1, 2, 11, 3, 40], [1, 1, 1, 20, 40]
    head = np.array([True, False, False, False, False])
    table = ab.user_table(np.arange(5), [[0]] * 5, [0, 1, 2, 3, 4], ranks_a, ranks_b, head)
    return ab.ab_report(table, head, a="A", b="B", dataset="d", split="test", n_bootstrap=100)


def test_log_ab_run(store, tmp_path):
    report = _report()
    files = write_report(report, tmp_path / "out")
    run_id = tab.log_ab_run(report, files, experiment="ab-test")
    c = mt.client()
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[mt.TAG_SOURCE_NAME] == "rl4rec ab" and run.data.tags["rl4rec.kind"] == "ab"
    assert run.data.params["a"] == "A" and run.data.params["users"] == "5"
    assert run.data.metrics["ab/ndcg_at_10/diff"] == pytest.approx(report.metric("ndcg@10").diff)
    assert run.data.metrics["ab/ties"] == 2.0 and "ab/segment/history_1-5/users" in run.data.metrics
    assert {f.path for f in c.list_artifacts(run_id)} == {"report.md", "ab.png", "per_user.csv", "ab.json"}
    exp = c.get_experiment(run.info.experiment_id)
    assert exp.artifact_location == f"{mt.artifact_root(mt.tracking_uri())}/ab-test"
    assert exp.tags[mt.TAG_EXPERIMENT_KIND] == mt.EXPERIMENT_KIND


def test_metric_names_mlflow_accepts():
    assert tab.metric_key("ab", "segment", "history_101+", "diff") == "ab/segment/history_101plus/diff"
    assert tab.metric_key("ab", "hit@10", "lo") == "ab/hit_at_10/lo"


def test_registry_uris_that_resolve_to_nothing(store):
    with pytest.raises(MissingArtifactError, match="resolves to nothing: no model 'rl4rec-nope' with alias 'champion'"):
        tab.registry_checkpoint("models:/rl4rec-nope@champion")
    with pytest.raises(MissingArtifactError, match="with version 3"):
        tab.registry_checkpoint("models:/rl4rec-nope/3")
    with pytest.raises(ConfigError, match="models:/NAME@ALIAS"):
        tab.registry_checkpoint("models:/just-a-name")


def test_the_core_refuses_a_registry_uri_without_a_resolver():
    from rl4rec_core.evaluation.ab_specs import resolve_spec

    with pytest.raises(ConfigError, match="--b 'models:/x@champion' is a registry URI"):
        resolve_spec("models:/x@champion", "--b")
    seen = []
    spec = resolve_spec("models:/x@champion", "--b", registry_resolver=lambda uri: seen.append(uri) or Path("/ckpt"))
    assert seen == ["models:/x@champion"] and spec.kind == "registry" and spec.label == "x@champion"
    assert spec.checkpoint == Path("/ckpt")


def test_retraining_flow_logs_the_report(store, rl4rec_dirs):
    from rl4rec_core.data import load_dataset
    from tests.helpers.tiny_recdata import write_tiny_dataset

    users = len(load_dataset(write_tiny_dataset(rl4rec_dirs["data"])).split("valid"))
    with mt.tracked_run(run_name="retrain", experiment="ab-test") as run_id:
        tab.log_ab_report(run_id, "tiny-ml", [1] * 10, [30] * 10, max_users=10, seed=0, confidence=0.95,
                          n_bootstrap=50)
    assert users > 10
    names = {f.path for f in mt.client().list_artifacts(run_id, "ab")}
    assert names == {"ab/report.md", "ab/ab.png", "ab/per_user.csv", "ab/ab.json"}
