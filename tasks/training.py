"""The training task: ``RLTrainer`` with rewards from the retrieval actor, logging live into MLflow."""

from __future__ import annotations

import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.service import ServiceRef, service_client

log = logging.getLogger(__name__)


# no retries: a repeat would meet its own half-finished output folder (the trainer refuses it)
@task(name="train_policy", cache_policy=NO_CACHE)
def train_policy(
    config: dict[str, Any],
    service: ServiceRef,
    mlflow_run_id: str | None = None,
    device: str = "cpu",
    log_checkpoints: str = "final",
    policy_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train per ``config`` (a ``TrainConfig`` dict); the trainer's summary (paths, steps, last stats).

    Per-step stats, ``training_log.jsonl``, the reward curve and the final checkpoint go to the MLflow
    run ``mlflow_run_id`` as they happen. When training fails, the log so far is still attached.
    ``policy_kwargs``: LLM settings for ``build_policy`` (prompt length, sampling, ...).
    """
    from rl4rec_core.data import load_dataset
    from rl4rec_core.policy.factory import build_policy
    from rl4rec_core.training.trainer import RLTrainer
    from rl4rec_core.training.config import TrainConfig

    from tasks.runtime import use_assigned_cpus

    use_assigned_cpus()
    cfg = TrainConfig.from_dict(config)
    dataset = load_dataset(cfg.dataset_name)
    policy = build_policy(cfg, dataset, device=device, **({} if cfg.use_dummy else policy_kwargs or {}))
    callbacks = []
    if mlflow_run_id:
        from tasks.tracking import configure_mlflow
        from tasks.training_callback import MLflowCallback, log_training_outputs

        configure_mlflow()
        callbacks.append(MLflowCallback(mlflow_run_id, log_checkpoints=log_checkpoints))
    trainer = RLTrainer(cfg, policy, service_client(service), dataset, callbacks=callbacks)
    try:
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
