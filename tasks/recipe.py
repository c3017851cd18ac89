"""Tasks of the quality recipe before RL: tune the retrieval scorer, warm-start the policy with SFT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from rl4rec_core.settings import RetrievalSettings
from tasks.caching import FileCache, file_digest, read_json, tree_digest

log = logging.getLogger(__name__)


def _tuning_files(inputs: dict[str, Any]) -> dict[str, Any]:
    """What tuning reads (the prepared split, the embeddings' sidecar, the policy checkpoint) and writes."""
    from rl4rec_core.embeddings.files import embedding_path, sidecar_path
    from rl4rec_core.paths import dataset_dir
    from rl4rec_core.retrieval.hybrid import settings_path

    ds, r = inputs["dataset"], inputs["retrieval"]
    model, emb_type = r.emb_model_name, r.emb_type
    folder = dataset_dir(ds)
    return {
        "data": [file_digest(folder / f) for f in ("items.parquet", "sequences.parquet")],
        "embeddings": file_digest(sidecar_path(embedding_path(ds, emb_type, model))),
        "checkpoint": tree_digest(inputs.get("checkpoint")),
        "out": str(settings_path(ds, emb_type, model).resolve()),
    }


def _tuning_ok(inputs: dict[str, Any], out: dict[str, Any]) -> bool:
    """The settings file still holds what the cached run wrote (a later tuning may have replaced it)."""
    written = read_json(out["path"]) or {}
    return written.get("settings") == out["settings"] and written.get("scorer") == out["scorer"]


# reads the validation split and rewrites one settings file atomically: safe to repeat, and cached
# (tasks/caching.py; the device does not change the grid search's choice); MLflow logging is the
# flow's (log_tuning), so a cached result is recorded in every run that uses it
@task(name="tune_retrieval", retries=1, retry_delay_seconds=2,
      cache_policy=FileCache(files=_tuning_files, outputs_ok=_tuning_ok, base=INPUTS - "device" + TASK_SOURCE))
def tune_retrieval_settings(
    dataset: str, retrieval: RetrievalSettings, checkpoint: str | None = None, device: str = "cpu",
) -> dict[str, Any]:
    """Grid-search the hybrid scorer on validation (``alpha`` too, on ``checkpoint``'s greedy validation texts,
    when it is a policy); the written settings, their validation figures and the file path."""
    from rl4rec_core.evaluation.policy_eval import checkpoint_texts
    from rl4rec_core.retrieval.tuning import tune_retrieval

    texts = checkpoint_texts(dataset, checkpoint, "valid", device) if checkpoint else None
    return tune_retrieval(dataset, retrieval, texts, text_source=checkpoint, device=device)


def log_tuning(run_id: str, out: dict[str, Any], with_policy: bool, dataset: str | None = None) -> None:
    """A tuning's validation figures, scorer tag and settings file in the flow's MLflow run; ``dataset``
    (a run on several) puts its name in the metric (``retrieval/beauty/valid/ndcg_at_10``) and tag names."""
    from tasks import tracking as mt

    stage = "retrieval_alpha" if with_policy else "retrieval"
    where = f"{stage}/{dataset}" if dataset else stage
    v = out["validation"]
    best = v.get("policy_fused") or v["echo_prior"]
    mt.log_metrics(run_id, {k: best[k] for k in ("ndcg@10", "hit@10", "mrr")}, prefix=f"{where}/valid/")
    mt.set_tags(run_id, {f"rl4rec.scorer.{dataset}" if dataset else "rl4rec.scorer": out["scorer"]})
    mt.log_artifact(run_id, out["path"], "retrieval")


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
    """Supervised fine-tuning per ``config`` (``SFTConfig.to_dict()``); the summary with ``final_checkpoint``."""
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
