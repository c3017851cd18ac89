"""MLflow for the offline A/B report (``rl4rec ab``, ``flows/ab_cli.py``; the retraining flow): a registry URI
as a local checkpoint, the report as an MLflow run of its own, or as artifacts of a flow's run.

The report itself is computed in the core (``rl4rec_core/evaluation/ab*.py``, no MLflow); the store, runs and
names are ``tasks/tracking.py``'s, the registered checkpoints ``tasks/registry.py``'s. ``tasks.registry``
(and Prefect with it) is imported only when a registry URI is resolved.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.settings import DEFAULT_EXPERIMENT
from tasks import tracking

if TYPE_CHECKING:  # the report's module loads numpy and torch; only its type is needed here
    from rl4rec_core.evaluation.ab import ABReport

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
SOURCE_NAME = "rl4rec ab"


def registry_checkpoint(uri: str) -> Path:
    """The local checkpoint folder of registered model ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``
    (``ab_specs.resolve_spec``'s ``registry_resolver``): a malformed URI is a ``ConfigError``, one that
    resolves to nothing a ``MissingArtifactError`` naming the store."""
    from tasks import registry

    m = _URI.match(uri)
    if not m:
        raise ConfigError(f"registry URI {uri!r} is malformed; write models:/NAME@ALIAS or models:/NAME/VERSION, "
                          "e.g. models:/rl4rec-ml-100k@champion")
    tracking.configure_mlflow()  # the store folder exists, and download_artifacts reads the registry URI
    name, alias, version = m["name"], m["alias"], m["version"]
    found = registry.alias_version(name, alias) is not None if alias else registry.has_version(name, int(version))
    if not found:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise MissingArtifactError(
            f"registry URI {uri!r} resolves to nothing: no model {name!r} with {what} in {tracking.tracking_uri()}; "
            "register one with `rl4rec run` (or point MLFLOW_TRACKING_URI at the store that has it) and see the "
            "models in the MLflow UI (Models)"
        )
    return registry.version_checkpoint(name, version=None if alias else int(version), alias=alias)


def metric_key(*parts: str) -> str:
    """``ab/ndcg_at_10/diff``, ``ab/segment/history_101plus/users``: MLflow refuses ``@`` and ``+`` in names."""
    return "/".join(p.replace("@", "_at_").replace("+", "plus") for p in parts)


def report_metrics(report: ABReport) -> dict[str, float]:
    """Every figure of the report by MLflow metric name (``ab/<metric>/diff``, ``ab/segment/head/diff``, ...)."""
    out = {metric_key("ab", k): float(getattr(report, k)) for k in ("wins", "ties", "losses", "users")}
    for m in report.metrics:
        out.update({metric_key("ab", m.metric, k): float(getattr(m, k)) for k in ("mean_a", "mean_b", "diff", "lo", "hi")})
    for s in report.segments:
        name = f"history_{s.name}" if s.group == "history length" else s.name
        out.update({metric_key("ab", "segment", name, k): float(getattr(s, k))
                    for k in ("users", "diff", "lo", "hi", "wins", "ties", "losses")})
    return out


def report_params(report: ABReport) -> dict[str, object]:
    return {"a": report.a, "b": report.b, "dataset": report.dataset, "split": report.split, "users": report.users,
            "n_bootstrap": report.n_bootstrap, "seed": report.seed, "confidence": report.confidence,
            "decided_by": report.decided_by, "head_share": report.head_share}


def log_ab_run(report: ABReport, files: Mapping[str, Path], experiment: str = DEFAULT_EXPERIMENT) -> str:
    """A new run in ``experiment`` (``tracking.tracked_run``: FINISHED, or FAILED when logging fails) with the
    report's params and figures and ``files`` (``{name: path}``) at the artifact root; its run id."""
    tracking.configure_mlflow()
    with tracking.tracked_run(run_name=f"ab {report.a} vs {report.b}", params=report_params(report),
                              tags={tracking.TAG_SOURCE_NAME: SOURCE_NAME, "rl4rec.kind": "ab"},
                              experiment=experiment) as run_id:
        tracking.log_metrics(run_id, report_metrics(report))
        for path in files.values():
            tracking.log_artifact(run_id, path)
    return run_id


def log_ab_report(run_id: str, dataset: str, challenger_ranks: Sequence[int], champion_ranks: Sequence[int], *,
                  max_users: int | None, seed: int, confidence: float, n_bootstrap: int) -> None:
    """The offline A/B report (``rl4rec ab``'s files) of challenger (A) against champion (B) on the retraining
    decision's validation users, as artifacts ``ab/`` of the flow's run; its NDCG@10 interval is the decision's."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation.ab import report_for_users
    from rl4rec_core.evaluation.ab_output import write_report
    from rl4rec_core.evaluation.policy_eval import select_users

    ds = load_dataset(dataset)
    users = select_users(len(ds.split("valid")), max_users, seed)  # the users evaluate_policy ranked
    report = report_for_users(ds, "valid", users, challenger_ranks, champion_ranks, a="challenger", b="champion",
                              n_bootstrap=n_bootstrap, seed=seed, confidence=confidence)
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_report(report, tmp).values():
            tracking.log_artifact(run_id, path, "ab")
