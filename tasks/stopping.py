"""A flow run stopped from outside (Prefect's cancellation, a SIGTERM) stops its Ray work and exits in seconds.

Prefect stops a flow run with SIGTERM: its worker sends it on a cancellation (to the run's process group,
which holds the local Ray's GCS and raylet too), and Prefect's handler in the run raises ``TerminationSignal``,
which the flow engine turns into a Cancelled run (a cancellation) or a Crashed one (a bare SIGTERM). Two things
in Ray 2.60 stop that from happening in a flow on Ray (measured with a process worker and a local Ray):

- ``ray.init`` in the main thread replaces the SIGTERM handler with Ray's own (``sys.exit``) and abseil's
  failure handler, which aborts the process 3 s after the signal. The run died with SIGABRT, stayed
  "Cancelling", and its MLflow run stayed RUNNING. :func:`keep_sigterm_handler` puts Prefect's handler back
  (``signal.signal`` also replaces abseil's C handler), so the cancellation's handshake sees it as well.
- ``ray.get`` without a timeout waits in C++ and runs Python signal handlers from there; an exception other
  than ``KeyboardInterrupt`` or ``SystemExit`` raised by a handler is lost until the task ends (a SIGTERM
  during training waited for the whole training). :class:`InterruptibleRayFuture` waits in Python instead
  (``ObjectRef.future()``), where ``TerminationSignal`` is raised at once.

A cancellation also sends SIGTERM to the local Ray's GCS and raylet (they share the run's process group), and a
Ray call to a GCS that is gone waits up to a minute for it. So the flow's ``with`` blocks end its MLflow run
KILLED and leave the retrieval actor to its own Ray instance (:func:`ray_goes_down_with_the_flow`; an actor on a
cluster is removed as always), and the task runner shuts that instance down, which ends the tasks still running;
:data:`FAST_SHUTDOWN` keeps that shutdown from waiting 5 s to send task events to the dead GCS
(``tests/flows/test_stopping.py``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
from typing import Any

from prefect_ray.task_runners import PrefectRayFuture


# Ray's system settings (RAY_<name>) for a local instance a flow starts: task events (for the dashboard, which is
# off) are flushed for at most 0.5 s at shutdown instead of 5 s, which a dead GCS (a cancellation) always costs
FAST_SHUTDOWN = {"RAY_task_events_shutdown_flush_timeout_ms": "500"}


def ray_goes_down_with_the_flow() -> bool:
    """Whether the running flow's task runner started the Ray instance it uses (and shuts it down at the end)."""
    from prefect.context import FlowRunContext

    runner = getattr(FlowRunContext.get(), "task_runner", None)
    # a runner without an address started a fresh local instance (tasks/runtime.py); with one it joined a cluster
    return bool(getattr(runner, "_owns_ray", False)) and not getattr(runner, "address", None)


@contextlib.contextmanager
def keep_sigterm_handler():
    """The process's SIGTERM handler (Prefect's, in a flow run) is the same after the block (``ray.init``)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class InterruptibleRayFuture(PrefectRayFuture):
    """prefect-ray's future, waited for in Python: a signal handler's exception (Prefect's ``TerminationSignal``)
    interrupts the wait at once instead of after the task."""

    def _wait_in_python(self, timeout: float | None) -> bool:
        """Whether the task finished within ``timeout`` seconds (None: however long it takes)."""
        if self._final_state is not None:
            return True
        try:
            self.wrapped_future.future().result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            return False
        except Exception:  # the task failed: prefect-ray's own wait/result turn that into its state
            pass
        return True

    def wait(self, timeout: float | None = None) -> None:
        if self._wait_in_python(timeout):
            super().wait()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        if not self._wait_in_python(timeout):
            raise TimeoutError(f"Task run {self.task_run_id} did not complete within {timeout} seconds")
        return super().result(raise_on_failure=raise_on_failure)

    @classmethod
    def of(cls, future: PrefectRayFuture) -> InterruptibleRayFuture:
        return cls(task_run_id=future.task_run_id, wrapped_future=future.wrapped_future)
