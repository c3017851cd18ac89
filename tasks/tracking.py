"""MLflow tracking: where the store lives, the names MLflow accepts, one run per flow run, evaluations.
The trainer callback is in ``tasks/training_callback.py``, the model registry in ``tasks/registry.py``.

Everything here talks to MLflow through ``MlflowClient`` and an explicit ``run_id`` instead of the
global "active run", because the run is opened by the flow (driver process) while training logs its
per-step metrics from a Ray worker. The tracking URI travels to workers through the
``MLFLOW_TRACKING_URI`` environment variable (``mlflow.set_tracking_uri()`` would stay in this
process). SQLite has a single writer, so the flow only logs between tasks, never while one runs.

A run is opened the way ``mlflow.start_run`` opens one (the tags of MLflow's run-context providers: Source,
user, git commit and branch), but without making it the process's "active run": ``tasks/registry.py``
resumes the run with ``mlflow.start_run(run_id=...)``, which raises while another run is active in the same
thread. ``tracked_run`` ends it FINISHED, FAILED on an exception, KILLED on Ctrl-C, as ``with
mlflow.start_run()`` would.

Artifact locations are absolute ``file://`` URIs: MLflow resolves a relative one against the working folder
when the experiment is created and stores the result, so moving ``mlruns/`` breaks the links (README, "MLflow").
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rl4rec_core.settings import DEFAULT_EXPERIMENT, flatten  # flatten: also tasks' dotted metric names

log = logging.getLogger(__name__)

DEFAULT_STORE_DIR = "mlruns"
TAG_FLOW_RUN_ID = "prefect.flow_run_id"
TAG_FLOW_NAME = "prefect.flow_name"
TAG_GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own tag names (mlflow.utils.mlflow_tags)
TAG_GIT_BRANCH = "mlflow.source.git.branch"
TAG_SOURCE_NAME = "mlflow.source.name"
TAG_USER = "mlflow.user"
# MLflow 3's UI opens an experiment without this tag as a GenAI (traces) experiment; ours holds training runs
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# ---------------------------------------------------------------------------------------------------
# where the store lives
def default_tracking_uri(store_dir: str | Path = DEFAULT_STORE_DIR) -> str:
    """``sqlite:////abs/mlruns/mlflow.db`` — absolute so a Ray worker in another folder finds it."""
    return f"sqlite:///{(Path(store_dir).expanduser().resolve() / 'mlflow.db')}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set (a server, another database), else the SQLite store in ``mlruns/``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a SQLite store (``mlruns/artifacts``); a server decides for itself (None)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def configure_mlflow(uri: str | None = None) -> str:
    """Fix the tracking URI for this process *and* for every process started from it (Ray workers).

    Call before Ray starts: workers of a local Ray inherit the driver's environment at start-up.
    """
    import mlflow

    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def client():
    from mlflow import MlflowClient

    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str = DEFAULT_EXPERIMENT) -> str:
    """The experiment's id, creating it with its artifacts under ``mlruns/artifacts/<name>``, tagged as a
    model-training experiment (``mlflow.experimentKind``) so the UI shows runs, not GenAI traces."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if TAG_EXPERIMENT_KIND not in exp.tags:  # made before the tag was set, or by someone else
            c.set_experiment_tag(exp.experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
        return exp.experiment_id
    root = artifact_root(tracking_uri())
    location = f"{root}/{name}" if root else None
    try:
        return c.create_experiment(name, artifact_location=location, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND})
    except Exception:  # created meanwhile by another process: use theirs
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def context_tags(tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tags ``mlflow.start_run`` gives a new run (Source = the main script, user, source type, git commit
    and branch of the main script's checkout), then ``tags``.

    MLflow takes the commit from ``sys.argv[0]``'s folder, which a console script (``rl4rec``, ``prefect``,
    ``pytest`` in a git-ignored ``.venv``) does not give; the commit of the code that runs (this file's
    checkout) is used then, through the same MLflow helper. Outside a git checkout there is none.
    """
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.git_utils import get_git_branch, get_git_commit

    resolved = resolve_tags(dict(tags or {}))
    if TAG_GIT_COMMIT not in resolved:
        here = str(Path(__file__).resolve().parent)
        commit = get_git_commit(here)
        if commit:
            resolved[TAG_GIT_COMMIT] = commit
            branch = get_git_branch(here)
            if branch:
                resolved.setdefault(TAG_GIT_BRANCH, branch)
    return resolved


# ---------------------------------------------------------------------------------------------------
# names and values MLflow accepts
_BAD_CHARS = re.compile(r"[^\w.\-/ :]")


def metric_name(key: str) -> str:
    """``ndcg@10`` -> ``ndcg_at_10``: MLflow names allow letters, digits and ``_ - . / : space``."""
    return _BAD_CHARS.sub("_", key.replace("@", "_at_"))


def numeric_items(d: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``d`` (bools and strings are not metrics)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            try:  # 0-d tensors and numpy scalars
                v = float(v.item()) if hasattr(v, "item") and getattr(v, "ndim", 0) == 0 else None
            except Exception:
                v = None
            if v is None:
                continue
        v = float(v)
        if math.isfinite(v):
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------
# runs
def start_run(
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    flow_run_id: str | None = None,
    flow_name: str | None = None,
) -> str:
    """Open a run as ``mlflow.start_run`` would (:func:`context_tags`), tagged with the Prefect flow run;
    log ``params`` (flattened). The run is not made the process's active run (module docstring)."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    if flow_run_id:
        all_tags[TAG_FLOW_RUN_ID] = str(flow_run_id)
    if flow_name:
        all_tags[TAG_FLOW_NAME] = flow_name
    if run_name:
        all_tags[MLFLOW_RUN_NAME] = run_name
    run = client().create_run(ensure_experiment(experiment), run_name=run_name, tags=context_tags(all_tags))
    if params:
        log_params(run.info.run_id, params)
    return run.info.run_id


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Every set leaf of ``params`` (flattened) as a parameter; an unset one (None) is left out, as
    ``mlflow.log_params`` users expect, rather than logged as the string "None" (README, "MLflow")."""
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    flat = flatten(params)
    batch = [Param(metric_name(k), str(v)[:MAX_PARAM_VAL_LENGTH]) for k, v in flat.items() if v is not None]
    client().log_batch(run_id, params=batch)  # MlflowClient splits it into the store's batch sizes


def log_metrics(run_id: str, metrics: Mapping[str, Any], step: int | None = None, prefix: str = "") -> None:
    """Log every finite number of a (nested) dict; keys become MLflow-safe names."""
    import time

    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    nums = numeric_items(flatten(metrics, sep="/"))
    batch = [Metric(metric_name(prefix + k), v, ts, step or 0) for k, v in nums.items()]
    client().log_batch(run_id, metrics=batch)  # MlflowClient splits it into the store's batch sizes


def set_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """A file or a whole folder (e.g. a checkpoint) under ``artifact_path``."""
    path = Path(path)
    c = client()
    if path.is_dir():
        c.log_artifacts(run_id, str(path), artifact_path)
    elif path.exists():
        c.log_artifact(run_id, str(path), artifact_path)
    else:
        log.warning("nothing to log at %s", path)


def log_dict(run_id: str, obj: Any, artifact_file: str) -> None:
    client().log_dict(run_id, obj, artifact_file)


def end_run(run_id: str, status: str = "FINISHED") -> None:
    client().set_terminated(run_id, status=status)


@contextlib.contextmanager
def tracked_run(log_system_metrics: bool | None = None, **start_kwargs) -> Iterator[str]:
    """A run (:func:`start_run`) that ends FINISHED, or FAILED (with the error as tag ``rl4rec.error``) when
    the body raises, KILLED when it is stopped from outside (Ctrl-C, a SIGTERM: Prefect's cancellation);
    with system metrics while it lasts (:func:`system_metrics`).

    Whatever was logged before the failure stays in the store: nothing is rolled back.
    """
    run_id = start_run(**start_kwargs)
    try:
        with system_metrics(run_id, log_system_metrics):
            yield run_id
    except BaseException as e:
        with contextlib.suppress(Exception):
            set_tags(run_id, {"rl4rec.error": f"{type(e).__name__}: {e}"[:5000]})
        with contextlib.suppress(Exception):
            # not an Exception: KeyboardInterrupt, SystemExit, Prefect's TerminationSignal (a SIGTERM, a cancel)
            end_run(run_id, "FAILED" if isinstance(e, Exception) else "KILLED")
        raise
    end_run(run_id, "FINISHED")


def system_metrics_on(requested: bool | None = None) -> bool:
    """System metrics are on by default; ``requested`` decides when given, else MLflow's own switch
    (``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns them off, as for ``mlflow.start_run``)."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING as switch

    if requested is not None:
        return requested
    return switch.get() if switch.defined else True


@contextlib.contextmanager
def system_metrics(run_id: str, requested: bool | None = None) -> Iterator[None]:
    """``system/*`` metrics of this machine (CPU, memory, disk, network; GPU with pynvml) in ``run_id``, every
    ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (10) while the block runs: MLflow's monitor, which
    ``mlflow.start_run(log_system_metrics=True)`` starts for an active run. The machine as a whole is
    sampled (psutil), so the Ray workers of a local instance are in the figures. Never fails the block."""
    monitor = None
    if system_metrics_on(requested):
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri())
            monitor.start()
        except Exception as e:  # psutil missing, an odd platform: the run goes on without them
            log.warning("no system metrics for MLflow run %s: %s", run_id, e)
            monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            monitor.finish()


# ---------------------------------------------------------------------------------------------------
# evaluation
def log_evaluation(run_id: str, results: Mapping[str, Mapping[str, Any]], name: str = "evaluation") -> None:
    """``{"policy": {"ndcg@10": ...}, "popularity": {...}}`` as metrics ``{name}/{model}/{metric}`` and as
    an MLflow table ``{name}/{name}.json`` (one row per model, column ``model`` then each metric)."""
    log_metrics(run_id, results, prefix=f"{name}/")
    log_table(run_id, evaluation_table(results), f"{name}/{name}.json")


def log_table(run_id: str, columns: Mapping[str, list], artifact_file: str) -> None:
    """``MlflowClient.log_table`` (a JSON table the UI shows as one; a second call on the same file appends
    rows), without the pandas-3 deprecation warning MLflow's own type check raises on every call."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
        client().log_table(run_id, dict(columns), artifact_file)


def evaluation_table(results: Mapping[str, Mapping[str, Any]]) -> dict[str, list]:
    """``{model: {metric: value}}`` as columns for ``log_table``: ``model`` and each metric (None where a
    model lacks it), models and metrics in the order they come."""
    metrics = list(dict.fromkeys(k for row in results.values() for k in row))
    return {"model": list(results), **{m: [row.get(m) for row in results.values()] for m in metrics}}


def record_evaluation(
    run_id: str, results: Mapping[str, Mapping[str, Any]], intervals: list[Mapping[str, Any]], split: str
) -> None:
    """An evaluation on ``split`` (:func:`log_evaluation` as ``eval_{split}``) and its paired intervals as
    metrics ``eval_{split}_paired/{a}-{b}/{metric}/{diff,lo,hi}`` and as the table
    ``eval_{split}/paired_intervals.json``."""
    log_evaluation(run_id, results, name=f"eval_{split}")
    log_metrics(run_id, {f"{r['a']}-{r['b']}/{r['metric']}/{k}": r[k] for r in intervals for k in ("diff", "lo", "hi")},
                prefix=f"eval_{split}_paired/")
    if intervals:
        columns = list(dict.fromkeys(k for r in intervals for k in r))
        log_table(run_id, {c: [r.get(c) for r in intervals] for c in columns}, f"eval_{split}/paired_intervals.json")


def record_embeddings(run_id: str, emb_path: str | Path) -> None:
    """The sidecar of the item embeddings a flow used (model, input hash) as an artifact."""
    from rl4rec_core.embeddings.files import sidecar_path

    log_artifact(run_id, sidecar_path(emb_path), "embeddings")

