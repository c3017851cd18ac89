"""``rl4rec train --num_workers N``: the trainer on N Ray Train workers (``TorchTrainer``), one shared
retrieval actor.

The driver (this module) joins or starts Ray, checks the cluster has room for the workers, makes sure a
retrieval actor serves the run's datasets (attaching to a running one, else starting one it removes at
the end), and runs :func:`worker_loop` on every worker under ``TorchTrainer``, which sets up the
``torch.distributed`` group (gloo on CPU, NCCL on GPU). Each worker builds the same trainer as a
one-process run (``build_trainer``) as a :class:`~rl4rec_core.training.data_parallel.DataParallelTrainer`.

The run's files are the existing layout (``training_log.jsonl``, ``checkpoint_step_N``, ``checkpoint_final``),
written by rank 0 into ``--checkpoint_dir``: the one source of truth, so ``--resume`` and evaluation work as
for any run. Ray Train's own checkpoints are not used. On a multi-machine cluster that folder, like the
data and embedding folders, must be on storage every node sees.

Ray 2.60 runs Train V2, which rejects Tune callbacks: MLflow logging is a trainer callback on rank 0
(``callbacks``), built inside the worker.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.settings import Settings

log = logging.getLogger(__name__)


class _LinesToDriver(io.TextIOBase):
    """Rank 0's console lines, sent to the driver to print: Ray would print a worker's output with a prefix,
    twice under Train V2, and not at all with ``log_to_driver=False``."""

    def __init__(self, queue) -> None:
        self.queue, self.buffer = queue, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.queue.put(("line", line))
        return len(text)


class _StepsToDriver:
    """A trainer callback of rank 0: each finished step, for the driver's progress bar."""

    def __init__(self, queue) -> None:
        self.queue = queue

    def on_step_end(self, step: int, stats: dict[str, Any]) -> None:
        self.queue.put(("step", step + 1, {"reward": stats["avg_reward"], "loss": stats["loss"]}))


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the environment, the trainer, the run; rank 0 talks to the driver."""
    import ray.train
    import torch

    os.environ.update(config["env"])  # paths and the MLflow store, as the driver sees them
    from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor
    from rl4rec_core.training.data_parallel import DataParallelTrainer
    from rl4rec_core.training.trainer import build_trainer

    settings = Settings.from_dict(config["settings"])
    if config["use_gpu"]:  # the GPU Ray Train gave this worker
        import ray.train.torch

        settings = settings.replace(run={"device": str(ray.train.torch.get_device())})
    else:
        torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    rank = ray.train.get_context().get_world_rank()
    client = RetrievalClient(get_retrieval_actor(config["actor_name"], config["namespace"]))
    queue = config["queue"]
    callbacks: list[Any] = []
    if rank == 0:
        factory = config.get("callbacks")
        callbacks = [*(factory() if factory is not None else []), _StepsToDriver(queue)]
    trainer = build_trainer(settings, client, callbacks=callbacks, progress=False, trainer_cls=DataParallelTrainer)
    with contextlib.redirect_stdout(_LinesToDriver(queue)) if rank == 0 else contextlib.nullcontext():
        summary = trainer.train()
    if rank == 0:
        queue.put(("summary", summary))


def _relay(queue, fit_thread: threading.Thread, total: int, progress: bool) -> dict[str, Any] | None:
    """Print rank 0's lines and move a progress bar while ``fit`` runs; rank 0's summary at the end."""
    from queue import Empty

    from tqdm.auto import tqdm

    from rl4rec_core.progress import bars_wanted

    bar = tqdm(total=total, desc="train", unit="step", disable=not bars_wanted(progress))
    summary = None
    try:
        while True:
            try:
                kind, *rest = queue.get(timeout=0.5)
            except Empty:
                if not fit_thread.is_alive() and queue.empty():
                    return summary
                continue
            if kind == "line":
                (tqdm.write if not bar.disable else print)(rest[0])
            elif kind == "step":
                bar.update(rest[0] - bar.n)
                bar.set_postfix({k: f"{v:.4f}" for k, v in rest[1].items()})
            elif kind == "summary":
                summary = rest[0]
    finally:
        bar.close()


def check_capacity(num_workers: int, cpus_per_worker: float, use_gpu: bool) -> None:
    """Refuse a run the cluster cannot place (it would wait for resources forever)."""
    import ray

    total = ray.cluster_resources()
    need_cpu = num_workers * cpus_per_worker
    if total.get("CPU", 0) < need_cpu:
        raise ConfigError(
            f"--num_workers {num_workers} x --cpus_per_worker {cpus_per_worker:g} needs {need_cpu:g} CPUs, but the "
            f"Ray cluster has {total.get('CPU', 0):g}; use fewer workers, a smaller --cpus_per_worker (e.g. 0.5), "
            f"or a bigger cluster (--address)"
        )
    if use_gpu and total.get("GPU", 0) < num_workers:
        raise ConfigError(
            f"--num_workers {num_workers} on --device cuda needs a GPU per worker, but the Ray cluster has "
            f"{total.get('GPU', 0):g}; use --num_workers {int(total.get('GPU', 0)) or 1} or --device cpu"
        )


def _absolute(settings: Settings) -> Settings:
    """Paths a worker reads made absolute: its working directory is Ray's session folder, not ours."""
    def resolved(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value and Path(value).exists() else value

    p = settings.policy
    return settings.replace(
        trainer={"checkpoint_dir": str(settings.output_dir.resolve())},
        policy={"policy_model": resolved(p.policy_model), "init_from": resolved(p.init_from)},
    )


def _worker_failure(e: Exception) -> Exception:
    """The worker's own error (e.g. a ``ConfigError`` about the output folder) instead of Ray Train's wrapper."""
    failures = getattr(e, "worker_failures", None) or {}
    for _, err in sorted(failures.items()):
        cause = err
        while cause is not None and not isinstance(cause, Rl4recError):
            cause = cause.__cause__ or getattr(cause, "cause", None)
        if isinstance(cause, Rl4recError):
            return cause
    return Rl4recError(f"data-parallel training failed: {e}")


def _shared_actor(settings: Settings) -> tuple[Any, str | None]:
    """Attach to a running actor that serves the datasets (its model and scorer were fixed when it started),
    or start one: ``(handle, id of the actor this call started, to remove at the end, else None)``. Keep the
    handle: Ray collects an actor it started (not detached) once no handle to it is left."""
    from rl4rec_core.retrieval import find_retrieval_actor, launch_retrieval_actor
    from rl4rec_core.retrieval.owner import actor_id

    r = settings.retrieval
    before = find_retrieval_actor(r.actor_name, r.namespace)
    actor = launch_retrieval_actor(r, settings.run.datasets, fusion=settings.fusion, get_if_exists=True)
    return actor, (actor_id(actor) if before is None else None)


def _torch_trainer(settings: Settings, config: dict[str, Any], use_gpu: bool, storage: str):
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    t = settings.trainer
    return TorchTrainer(
        worker_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": t.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        # a failed worker fails the run: a restart would meet the half-written step (use --resume)
        run_config=RunConfig(name="rl4rec-train", storage_path=storage, failure_config=FailureConfig(max_failures=0)),
    )


def _fit(trainer, queue, total: int, progress: bool) -> dict[str, Any]:
    """``trainer.fit()`` in a thread while this one relays rank 0's output; rank 0's summary."""
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread below
            failure.append(e)

    fit_thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    fit_thread.start()
    summary = _relay(queue, fit_thread, total, progress)
    fit_thread.join()
    if failure:
        raise failure[0]
    if summary is None:
        raise Rl4recError("data-parallel training ended without rank 0's summary; see the Ray worker logs")
    return summary


def train_data_parallel(
    settings: Settings,
    address: str | None = None,
    callbacks: Callable[[], Sequence[Any]] | None = None,
    progress: bool = True,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train with ``settings.trainer.num_workers`` Ray Train workers; returns rank 0's summary.

    address: the Ray cluster to join (``RAY_ADDRESS`` when None; a new local instance when neither is set
        and this process has not joined one). callbacks: builds rank 0's trainer callbacks inside the worker.
    env: extra environment for the workers (e.g. the MLflow store), beside ``paths.worker_env()``.
    """
    import ray
    from ray.util.queue import Queue

    from rl4rec_core import paths
    from rl4rec_core.devices import resolve_device
    from rl4rec_core.ray_access import init_ray
    from rl4rec_core.retrieval import remove_retrieval_actor
    from rl4rec_core.training.data_parallel import check_split

    n = settings.trainer.num_workers
    if not n:
        raise ConfigError("train_data_parallel needs trainer.num_workers >= 1 (--num_workers N)")
    check_split(settings, n)
    use_gpu = resolve_device(settings.run.device).type == "cuda"
    r = settings.retrieval
    if not ray.is_initialized():
        init_ray(address or os.environ.get("RAY_ADDRESS") or "local", namespace=r.namespace, log_to_driver=False)
    check_capacity(n, settings.trainer.cpus_per_worker, use_gpu)
    settings = _absolute(settings)
    actor, owned = _shared_actor(settings)  # noqa: F841 - the handle keeps a started actor alive
    storage = tempfile.mkdtemp(prefix="rl4rec-ray-train-")  # Ray Train's run state; the run's files are ours
    queue = Queue(actor_options={"num_cpus": 0})  # rank 0 -> driver: console lines, steps, the summary
    config = {
        "settings": settings.to_dict(), "env": {**paths.worker_env(), **(env or {})}, "use_gpu": use_gpu,
        "cpus_per_worker": settings.trainer.cpus_per_worker, "actor_name": r.actor_name, "namespace": r.namespace,
        "callbacks": callbacks, "queue": queue,
    }
    log.info("data-parallel training: %d workers (%s), output %s", n, "GPU" if use_gpu else "CPU",
             settings.output_dir)
    try:
        return _fit(_torch_trainer(settings, config, use_gpu, storage), queue, settings.trainer.num_steps, progress)
    except ray.train.TrainingFailedError as e:
        raise _worker_failure(e) from e
    finally:
        queue.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
        if owned is not None:
            remove_retrieval_actor(r.actor_name, r.namespace, owned_id=owned)
