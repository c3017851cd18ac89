"""The MLflow trainer callback: each step's stats as metrics, and at the end the summary, the JSONL log,
the reward-curve plot and the final checkpoint, all into the run the flow opened (``tasks/tracking.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl4rec_core.errors import ConfigError
from rl4rec_core.training.plots import plot_training_log
from tasks.tracking import log_artifact, log_metrics, set_tags


class MLflowCallback:
    """Trainer callbacks that log into an existing MLflow run (opened by the flow).

    ``on_step_end`` logs every number in the step's stats (loss, reward mean/max/min, KL, generation
    length, step time — whatever the trainer reports) at that step; ``on_train_end`` logs the summary,
    ``training_log.jsonl``, the reward-curve PNG and the final checkpoint. Intermediate checkpoints are
    only logged with ``log_checkpoints="all"``: an LLM checkpoint is hundreds of MB.
    """

    def __init__(self, run_id: str, log_checkpoints: str = "final", prefix: str = "train/"):
        if log_checkpoints not in ("final", "all", "none"):
            raise ConfigError(f"log_checkpoints={log_checkpoints!r} is not one of final, all, none")
        self.run_id = run_id
        self.log_checkpoints = log_checkpoints
        self.prefix = prefix
        self.output_dir: Path | None = None

    def on_train_start(self, *args, **kwargs) -> None:
        trainer = args[0] if args else kwargs.get("trainer")
        out = getattr(trainer, "output_dir", None)
        self.output_dir = Path(out) if out else None
        set_tags(self.run_id, {"rl4rec.training": "started"})

    def on_step_end(self, step: int, stats: Mapping[str, Any]) -> None:
        log_metrics(self.run_id, {k: v for k, v in stats.items() if k != "step"}, step=int(step), prefix=self.prefix)

    def on_checkpoint(self, step: int, path: str | Path) -> None:
        path = Path(path)
        if self.output_dir is None:
            self.output_dir = path.parent
        if self.log_checkpoints == "all" or (self.log_checkpoints == "final" and path.name == "checkpoint_final"):
            log_artifact(self.run_id, path, f"checkpoints/{path.name}")

    def on_train_end(self, summary: Mapping[str, Any] | None = None, *args, **kwargs) -> None:
        summary = dict(summary or {})
        log_metrics(self.run_id, summary, prefix="train_summary/")
        out = summary.get("output_dir") or self.output_dir
        if not out and summary.get("training_log"):
            out = Path(summary["training_log"]).parent
        if out:
            log_training_outputs(self.run_id, Path(out))
        set_tags(self.run_id, {"rl4rec.training": "finished"})


def log_training_outputs(run_id: str, output_dir: str | Path) -> None:
    """``training_log.jsonl`` and the reward-curve PNG of a training output folder."""
    output_dir = Path(output_dir)
    log_file = output_dir / "training_log.jsonl"
    if log_file.exists():
        log_artifact(run_id, log_file, "training")
        png = plot_training_log(log_file, output_dir / "reward_curve.png")
        if png:
            log_artifact(run_id, png, "plots")
