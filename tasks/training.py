"""The training task: ``RLTrainer`` with rewards from the retrieval actor, logging live into MLflow."""

from __future__ import annotations

import functools
import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from tasks.service import ServiceRef, service_client

log = logging.getLogger(__name__)


# no retries: a repeat would meet its own half-finished output folder (the trainer refuses it)
@task(name="train_policy", cache_policy=NO_CACHE)
def train_policy(
    settings: dict[str, Any],
    service: ServiceRef,
    mlflow_run_id: str | None = None,
    log_checkpoints: str = "final",
) -> dict[str, Any]:
    """Train per ``settings`` (a ``Settings`` tree as a dict); the trainer's summary (paths, steps, last stats).

    Per-step stats, ``training_log.jsonl``, the reward curve and the final checkpoint go to the MLflow
    run ``mlflow_run_id`` as they happen. When training fails, the log so far is still attached.
    """
    from rl4rec_core.settings import Settings
    from rl4rec_core.training.trainer import build_trainer
    from tasks.runtime import use_assigned_cpus

    use_assigned_cpus()
    cfg = Settings.from_dict(settings)
    callbacks: list = []
    if TaskRunContext.get() is not None:  # progress on the flow run's Artifacts tab
        from tasks.training_callback import PrefectProgressCallback

        callbacks.append(PrefectProgressCallback())
    if mlflow_run_id:
        from tasks.tracking import configure_mlflow
        from tasks.training_callback import MLflowCallback, log_training_outputs

        configure_mlflow()
        callbacks.append(MLflowCallback(mlflow_run_id, log_checkpoints=log_checkpoints))
    try:
        if cfg.trainer.num_workers:
            summary = _train_data_parallel(cfg, service, mlflow_run_id, log_checkpoints)
        else:
            # no progress bar: a Ray worker's output goes to the flow's log, one line per update (the
            # progress artifact shows where training is)
            trainer = build_trainer(cfg, service_client(service), callbacks=callbacks, progress=False)
            summary = trainer.train()
    except BaseException:
        if mlflow_run_id:  # keep what was learned about the failure: the steps that did run
            try:
                log_training_outputs(mlflow_run_id, cfg.output_dir)
            except Exception:
                log.exception("could not attach the partial training log to MLflow run %s", mlflow_run_id)
        raise
    summary["output_dir"] = str(cfg.output_dir)
    return summary


def _train_data_parallel(cfg, service: ServiceRef, mlflow_run_id: str | None, log_checkpoints: str) -> dict[str, Any]:
    """``trainer.num_workers`` Ray Train workers against the flow's actor; rank 0 logs to the MLflow run.

    This task only waits for them: the flow submits it without CPUs (flows/stages.py), so the workers get
    the cluster's. The Prefect progress artifact needs this task's run context, which the workers lack.
    """
    from rl4rec_core.training.ray_train import train_data_parallel
    from tasks.runtime import worker_env

    cfg = cfg.replace(retrieval={"actor_name": service["name"], "namespace": service["namespace"]})
    callbacks = None
    if mlflow_run_id:
        callbacks = functools.partial(_mlflow_callbacks, mlflow_run_id, log_checkpoints)
    return train_data_parallel(cfg, callbacks=callbacks, progress=False, env=worker_env())


def _mlflow_callbacks(mlflow_run_id: str, log_checkpoints: str) -> list:
    """Rank 0's callbacks, built inside the Ray Train worker (Train V2 takes no Tune callbacks)."""
    from tasks.tracking import configure_mlflow
    from tasks.training_callback import MLflowCallback

    configure_mlflow()
    return [MLflowCallback(mlflow_run_id, log_checkpoints=log_checkpoints)]
