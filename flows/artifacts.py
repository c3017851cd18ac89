"""Prefect artifacts of a flow run: a link to its MLflow run and the evaluation table.

Created in the flow (the driver), so they belong to the flow run and show on its Artifacts tab and,
by key, on the UI's Artifacts page. The training progress artifact is the trainer callback's
(``tasks/training_callback.py``), since the steps happen in the training task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

# `mlflow ui` serves a SQLite or file store here; an http(s) tracking URI is its own UI
LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"
METRICS = ("ndcg@10", "hit@10", "mrr", "ndcg@5", "hit@5", "ndcg@20", "hit@20")


def mlflow_run_url(run_id: str) -> str:
    """The MLflow UI page of a run: the tracking server's, or ``mlflow ui``'s for a local store."""
    from tasks import tracking as mt

    uri = mt.tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_MLFLOW_UI
    experiment_id = mt.client().get_run(run_id).info.experiment_id
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def link_mlflow_run(run_id: str, flow_name: str) -> None:
    """A link artifact (key ``mlflow-run``) to the flow run's MLflow run."""
    from prefect.artifacts import create_link_artifact

    from tasks import tracking as mt

    uri = mt.tracking_uri()
    how = "" if uri.startswith(("http://", "https://")) else f" (start `mlflow ui --backend-store-uri {uri}` first)"
    _safely(create_link_artifact, link=mlflow_run_url(run_id), link_text=f"MLflow run {run_id}",
            key="mlflow-run", description=f"Parameters, metrics and artifacts of this {flow_name} run{how}")


def evaluation_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model: its name, the headline metrics (4 decimals), users and scorer. A run on several
    datasets names its rows ``<dataset>/<model>`` (flows/stages.py): they get a ``dataset`` column."""
    rows = []
    for name, metrics in results.items():
        dataset, _, model = name.rpartition("/")
        row: dict[str, Any] = {"dataset": dataset, "model": model} if dataset else {"model": name}
        row.update({k: round(float(metrics[k]), 4) for k in METRICS if metrics.get(k) is not None})
        for k in ("users", "scorer"):
            if metrics.get(k) is not None:
                row[k] = metrics[k]
        rows.append(row)
    return rows


def evaluation_table(results: Mapping[str, Mapping[str, Any]], split: str,
                     intervals: Sequence[Mapping[str, Any]] | None = None) -> None:
    """A table artifact (key ``evaluation-<split>``) of the results; a markdown artifact with the
    paired bootstrap intervals beside it when there are any."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = f"evaluation-{split}".lower().replace("_", "-")
    _safely(create_table_artifact, table=evaluation_rows(results), key=key,
            description=f"Full-ranking evaluation on the {split} split (same users for every row)")
    if intervals:
        from rl4rec_core.evaluation.bootstrap import format_intervals

        _safely(create_markdown_artifact, key=f"{key}-intervals",
                markdown=f"### Paired bootstrap, {split}\n\n```\n{format_intervals(intervals)}\n```\n",
                description="95% intervals of the per-user differences (a - b)")


def _safely(create, **kwargs) -> None:
    # an artifact is a report: the API refusing one must not fail the run whose results it reports
    try:
        create(**kwargs)
    except Exception:
        log.warning("could not create the Prefect artifact %r", kwargs.get("key"), exc_info=True)
