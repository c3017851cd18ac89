"""Trainer callbacks of the training task: MLflow (each step's stats as metrics, and at the end the summary
numbers the steps do not already hold, the JSONL log, the reward-curve figure and the final checkpoint, all
into the run the flow opened, ``tasks/tracking.py``) and Prefect (a progress artifact of the task run)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl4rec_core.errors import ConfigError
from rl4rec_core.training.plots import training_figure
from tasks.tracking import client, log_artifact, log_metrics, set_tags

log = logging.getLogger(__name__)

# summary entries the step metrics already hold: the last step's stats, and its mean reward (``train/avg_reward``)
SUMMARY_DUPLICATES = ("last", "last_avg_reward")


class MLflowCallback:
    """Trainer callbacks that log into an existing MLflow run (opened by the flow).

    ``on_step_end`` logs every number in the step's stats (loss, reward mean/max/min, KL, generation
    length, step time — whatever the trainer reports) at that step; ``on_train_end`` logs the summary
    numbers that are new (``train_summary/steps``, ``first_avg_reward``, ``resumed_from``; not the last
    step's stats again), ``training_log.jsonl``, the reward-curve figure and the final checkpoint.
    Intermediate checkpoints are only logged with ``log_checkpoints="all"``: an LLM checkpoint is hundreds
    of MB.
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
        log_metrics(self.run_id, {k: v for k, v in summary.items() if k not in SUMMARY_DUPLICATES},
                    prefix="train_summary/")
        out = summary.get("output_dir") or self.output_dir
        if not out and summary.get("training_log"):
            out = Path(summary["training_log"]).parent
        if out:
            log_training_outputs(self.run_id, Path(out))
        set_tags(self.run_id, {"rl4rec.training": "finished"})


def log_training_outputs(run_id: str, output_dir: str | Path) -> None:
    """``training_log.jsonl`` of a training output folder, and its reward curve as the figure
    ``plots/reward_curve.png`` (``log_figure``; also saved beside the log for a reader without MLflow)."""
    output_dir = Path(output_dir)
    log_file = output_dir / "training_log.jsonl"
    if not log_file.exists():
        return
    log_artifact(run_id, log_file, "training")
    fig = training_figure(log_file)
    if fig is None:
        return
    import matplotlib.pyplot as plt

    try:
        fig.savefig(output_dir / "reward_curve.png", dpi=100)
        client().log_figure(run_id, fig, "plots/reward_curve.png", save_kwargs={"dpi": 100})
    finally:
        plt.close(fig)


class PrefectProgressCallback:
    """Training progress as a Prefect progress artifact (key ``training-progress``) of the task run.

    Created at the start (at the resumed step's share), updated after a step at most every
    ``min_interval_s`` seconds with the step and its mean reward, and set to 100 at the end. The
    Prefect API failing to take an update is logged once and never stops training.
    """

    def __init__(self, key: str = "training-progress", min_interval_s: float = 2.0):
        self.key = key
        self.min_interval_s = min_interval_s
        self.artifact_id = None
        self.total = 0
        self._last = 0.0
        self._warned = False

    def _share(self, done: int) -> float:
        return round(100.0 * min(done, self.total) / self.total, 1) if self.total else 100.0

    def on_train_start(self, trainer, *args, **kwargs) -> None:
        self.total = int(trainer.settings.trainer.num_steps)
        self.artifact_id = self._call(self._create, progress=self._share(trainer.step),
                                      description=f"GRPO training: step {trainer.step}/{self.total}")
        self._last = time.monotonic()

    def _create(self, progress: float, description: str):
        """The artifact, on this task run *and* its flow run: on a Ray worker there is no flow run context,
        so ``create_progress_artifact`` would leave it off the flow run's Artifacts tab."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactCreate
        from prefect.context import TaskRunContext

        ctx = TaskRunContext.get()
        task_run = ctx.task_run if ctx else None
        with get_client(sync_client=True) as client:
            return client.create_artifact(ArtifactCreate(
                key=self.key, type="progress", data=progress, description=description,
                task_run_id=task_run.id if task_run else None, flow_run_id=task_run.flow_run_id if task_run else None,
            )).id

    def on_step_end(self, step: int, stats: Mapping[str, Any]) -> None:
        done = int(step) + 1
        if done < self.total and time.monotonic() - self._last < self.min_interval_s:
            return
        reward = stats.get("avg_reward")
        text = f"step {done}/{self.total}" + (f", mean reward {float(reward):.4f}" if reward is not None else "")
        self._update(self._share(done), text)

    def on_train_end(self, summary: Mapping[str, Any] | None = None, *args, **kwargs) -> None:
        steps = (summary or {}).get("steps", self.total)
        self._update(100.0, f"finished: {steps}/{self.total} steps")

    def _update(self, progress: float, description: str) -> None:
        from prefect.artifacts import update_progress_artifact

        if self.artifact_id is not None:
            self._call(update_progress_artifact, artifact_id=self.artifact_id, progress=progress,
                       description=description)
        self._last = time.monotonic()

    def _call(self, fn, **kwargs):
        try:
            return fn(**kwargs)
        except Exception:
            if not self._warned:
                log.warning("could not report training progress to Prefect", exc_info=True)
                self._warned = True
            return None
