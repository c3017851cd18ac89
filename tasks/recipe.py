"""Tasks of the quality recipe before RL: tune the retrieval scorer, warm-start the policy with SFT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

log = logging.getLogger(__name__)


# reads the validation split and rewrites one settings file atomically: safe to repeat
@task(name="tune_retrieval", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def tune_retrieval_settings(
    dataset: str, emb_model: str, emb_type: str = "item", checkpoint: str | None = None, device: str = "cpu",
    mlflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Grid-search the hybrid scorer on validation (``alpha`` too when ``checkpoint`` is a policy); the
    written settings, their validation figures and the file path. Logged to ``mlflow_run_id``."""
    from rl4rec_core.retrieval.tuning import tune_retrieval

    out = tune_retrieval(dataset, emb_model, emb_type, checkpoint=checkpoint, device=device)
    if mlflow_run_id:
        from tasks import tracking as mt

        mt.configure_mlflow()
        stage = "retrieval_alpha" if checkpoint else "retrieval"
        v = out["validation"]
        best = v.get("policy_fused") or v["echo_prior"]
        mt.log_metrics(mlflow_run_id, {k: best[k] for k in ("ndcg@10", "hit@10", "mrr")}, prefix=f"{stage}/valid/")
        mt.set_tags(mlflow_run_id, {"rl4rec.scorer": out["scorer"]})
        mt.log_artifact(mlflow_run_id, out["path"], "retrieval")
    return out


class _SFTLogger:
    """SFT steps as ``sft/*`` metrics in the flow's MLflow run."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def on_step_end(self, step: int, stats: dict[str, Any]) -> None:
        from tasks import tracking as mt

        mt.log_metrics(self.run_id, {k: v for k, v in stats.items() if k != "step"}, step=int(step), prefix="sft/")


# no retries: a repeat would meet its own output folder
@task(name="fine_tune_policy", cache_policy=NO_CACHE)
def fine_tune_policy(config: dict[str, Any], mlflow_run_id: str | None = None) -> dict[str, Any]:
    """Supervised fine-tuning per ``config`` (an ``SFTConfig`` dict); the summary with ``final_checkpoint``."""
    from rl4rec_core.training.sft import SFTConfig, run_sft
    from tasks.runtime import use_assigned_cpus

    use_assigned_cpus()
    cfg = SFTConfig(**config)
    if mlflow_run_id:
        from tasks import tracking as mt

        mt.configure_mlflow()
    callbacks = [_SFTLogger(mlflow_run_id)] if mlflow_run_id else []
    summary = run_sft(cfg, callbacks=callbacks)
    if mlflow_run_id:
        from tasks import tracking as mt

        log_file = Path(cfg.output_dir) / "training_log.jsonl"
        if log_file.is_file():
            mt.log_artifact(mlflow_run_id, log_file, "sft")
    return summary
