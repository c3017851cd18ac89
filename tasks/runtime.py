"""How tasks reach Ray: the task runner, per-task resources, and the environment every worker gets.

Two facts shape this file (measured on Ray 2.60 / Prefect 3.9):

* A Ray worker records its task runs in the Prefect API it is pointed at. prefect-ray ships the
  flow's settings context with each task, and we also put ``PREFECT_API_URL`` in the worker's
  environment, so every task run lands in the *same* API as its flow run — never in a per-worker
  temporary server.
* Workers of an already running Ray (a cluster, a test session's Ray) do not see environment
  variables the driver set later (``MLFLOW_TRACKING_URI``, ``RL4REC_DATA_DIR``, ...). Each task is
  therefore submitted with a ``runtime_env`` carrying them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from prefect.task_runners import TaskRunner
from prefect_ray import RayTaskRunner
from prefect_ray.context import remote_options

from rl4rec_core.settings import RAY_NAMESPACE
from tasks.stopping import FAST_SHUTDOWN, InterruptibleRayFuture, keep_sigterm_handler

# beyond the core's variables (rl4rec_core/env_allowlist.py), a worker needs the flow's MLflow store and Prefect
# API and Prefect's logging config (formats, console level: flows/console.py); each named, without credentials
# (MLFLOW_TRACKING_TOKEN/PASSWORD, PREFECT_API_KEY, PREFECT_API_AUTH_STRING): those reach workers only when
# named in RL4REC_WORKER_SECRETS. A local Ray the flow starts inherits these names too, and nothing unnamed.
_FORWARDED = (
    "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_DISABLE_TELEMETRY",
    "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "PREFECT_API_URL", "PREFECT_API_SSL_CERT_FILE", "PREFECT_API_TLS_INSECURE_SKIP_VERIFY",
    "PREFECT_API_REQUEST_TIMEOUT", "PREFECT_SERVER_ANALYTICS_ENABLED", "MLFLOW_LOGGING_LEVEL",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "PREFECT_HOME", "PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_TO_API_ENABLED",
    "PREFECT_LOGGING_COLORS", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_LOGGING_FORMATTERS_STANDARD_FORMAT",
    "PREFECT_LOGGING_FORMATTERS_STANDARD_DATEFMT", "PREFECT_LOGGING_FORMATTERS_STANDARD_FLOW_RUN_FMT",
    "PREFECT_LOGGING_FORMATTERS_STANDARD_TASK_RUN_FMT",
)
# prefect-ray also ships the flow's Prefect settings with each task; these are withheld from them the same way
_PREFECT_CREDENTIALS = ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")


# set by `rl4rec run` on a terminal (flows/console.py task_bar): called with (task name, "submitted" | "done")
on_task_event: Callable[[str, str], None] | None = None


def prefect_api_url() -> str | None:
    """The API this process reports to (a harness or ``prefect server start``), or None (ephemeral)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def worker_env() -> dict[str, str]:
    """Environment for the flows' Ray workers: the core's (absolute paths, offline switches, PYTHONPATH)
    plus the MLflow store and the Prefect API (credentials only when named in ``RL4REC_WORKER_SECRETS``)."""
    from rl4rec_core.paths import worker_env as core_worker_env
    from tasks.tracking import tracking_uri

    env = core_worker_env(names=_FORWARDED)
    env["MLFLOW_TRACKING_URI"] = tracking_uri()
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # progress bars in workers: see paths.py
    api = prefect_api_url()
    if api:
        env["PREFECT_API_URL"] = api
    return env


@contextlib.contextmanager
def prefect_credentials_withheld():
    """Inside the block, the Prefect settings a submitted task carries hold no credential (API key, auth
    string) that the user did not name in ``RL4REC_WORKER_SECRETS``; the flow's own settings are untouched."""
    from prefect import settings as ps

    from rl4rec_core.paths import worker_secrets

    named = set(worker_secrets())
    withheld = [getattr(ps, n) for n in _PREFECT_CREDENTIALS if n not in named and getattr(ps, n).value()]
    if not withheld:
        yield
        return
    with ps.temporary_settings(restore_defaults=withheld):
        yield


def ray_options(num_cpus: float = 1, num_gpus: float = 0, **extra: Any):
    """``with ray_options(num_cpus=1): task.submit(...)`` — resources plus the worker environment."""
    opts: dict[str, Any] = {"num_cpus": num_cpus, "runtime_env": {"env_vars": worker_env()}, **extra}
    if num_gpus:
        opts["num_gpus"] = num_gpus
    return remote_options(**opts)


class LazyRayTaskRunner(RayTaskRunner):
    """``RayTaskRunner`` that joins or starts Ray at the first submitted task, not when the flow starts.

    A flow that rejects its parameters therefore fails in milliseconds without touching Ray, and a
    flow whose work is all in the driver never starts a cluster. ``address`` / ``RAY_ADDRESS`` select an
    existing cluster as with ``RayTaskRunner``; an already initialised Ray in this process is reused.
    """

    def __enter__(self):
        TaskRunner.__enter__(self)
        self._ray_joined = False
        return self

    def _join_ray(self) -> None:
        import ray

        from rl4rec_core.ray_access import init_ray

        self._ray_joined = True
        if ray.is_initialized():
            self._owns_ray = False
            return
        kwargs = dict(self.init_kwargs)
        runtime_env = dict(kwargs.pop("runtime_env", None) or {})
        runtime_env["env_vars"] = {**worker_env(), **runtime_env.get("env_vars", {})}
        # "local" starts a fresh instance: plain ray.init() would attach to any cluster it finds on the
        # machine (someone else's `ray start --head`); a cluster is used only when named (RAY_ADDRESS=auto works)
        address = self.address or "local"
        self._owns_ray = True
        if address == "local":  # a user's own values win
            for key, value in FAST_SHUTDOWN.items():
                os.environ.setdefault(key, value)
        t0 = time.perf_counter()
        # bound to 127.0.0.1 for a local instance, with Ray's token authentication (rl4rec_core/ray_access.py)
        # Ray's own handler and format on its loggers only where nobody configured logging (flows/console.py did)
        kwargs.setdefault("configure_logging", not logging.getLogger().handlers)
        with keep_sigterm_handler():  # Prefect's, so a cancellation still stops the flow (tasks/stopping.py)
            self._ray_context = init_ray(address, keep_env=_FORWARDED, runtime_env=runtime_env, **kwargs)
        what = "started a local instance" if address == "local" else f"connected to {address}"
        self.logger.info("Ray: %s in %.1f s", what, time.perf_counter() - t0)

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        if not getattr(self, "_ray_joined", False):
            self._join_ray()
        with prefect_credentials_withheld():
            future = super().submit(task, parameters, wait_for=wait_for, dependencies=dependencies)
        future = InterruptibleRayFuture.of(future)  # a cancellation (SIGTERM) stops the flow's wait at once
        hook = on_task_event
        if hook is not None:
            hook(task.name, "submitted")
            future.add_done_callback(lambda _: hook(task.name, "done"))
        return future

    def __exit__(self, *exc_info):
        if getattr(self, "_ray_joined", False):
            RayTaskRunner.__exit__(self, *exc_info)
        else:
            TaskRunner.__exit__(self, *exc_info)


def task_runner(address: str | None = None, num_cpus: int | None = None) -> LazyRayTaskRunner:
    """The flows' task runner: a local Ray unless ``address`` / ``RAY_ADDRESS`` names a cluster."""
    init: dict[str, Any] = {"namespace": RAY_NAMESPACE, "include_dashboard": False}
    if num_cpus:
        init["num_cpus"] = num_cpus
    return LazyRayTaskRunner(address=address or os.environ.get("RAY_ADDRESS"), init_kwargs=init)


def current_flow_run() -> tuple[str | None, str | None]:
    """``(flow_run_id, flow_run_name)`` of the running flow, or ``(None, None)`` outside one."""
    from prefect.runtime import flow_run

    fid = flow_run.get_id()
    return (str(fid) if fid else None), (flow_run.get_name() if fid else None)


def use_assigned_cpus() -> int:
    """Give torch as many threads as the Ray task was assigned CPUs (Ray's worker default is 1 thread)."""
    import torch

    n = 1
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():
            n = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    torch.set_num_threads(n)
    return n


def training_cpus(requested: float | None = None) -> float:
    """CPUs for a task that runs alone (SFT, RL): ``requested``, else the largest live node's CPUs."""
    if requested:
        return requested
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")] if ray.is_initialized() else []
    return max([n.get("Resources", {}).get("CPU", 1.0) for n in nodes] or [1.0])
