"""The pieces of tasks/stopping.py on a real local Ray: a SIGTERM handler that raises interrupts the flow's wait
for a Ray task while the task still runs (Ray's own ``ray.get`` would hold the exception until the task ends),
and the handler in place before ``ray.init`` is the one after it. The whole path, through a real Prefect
worker, is tests/flows/test_stopping.py."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

from tasks.stopping import InterruptibleRayFuture, keep_sigterm_handler


class Stop(BaseException):
    """What Prefect's handler raises (``TerminationSignal``): a BaseException, neither KeyboardInterrupt nor SystemExit."""


def _raise_stop(signum, frame):
    raise Stop(signum)


@pytest.fixture
def sigterm_raises():
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_handlers_exception_interrupts_the_wait_while_the_task_runs(ray_local, sigterm_raises):
    ray = ray_local

    @ray.remote(num_cpus=0)
    def slow():
        time.sleep(120)

    ref = slow.remote()
    future = InterruptibleRayFuture(task_run_id=uuid.uuid4(), wrapped_future=ref)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    try:
        with pytest.raises(Stop):
            future.result()
        ready, _ = ray.wait([ref], timeout=0)
        assert not ready  # the wait ended on the signal, not on the task
    finally:
        ray.cancel(ref, force=True)


def test_the_result_and_a_timeout_as_prefect_rays_future(ray_local):
    ray = ray_local

    @ray.remote(num_cpus=0)
    def answer(delay):
        time.sleep(delay)
        return 42

    assert InterruptibleRayFuture(task_run_id=uuid.uuid4(), wrapped_future=answer.remote(0)).result() == 42
    slow = answer.remote(30)
    try:
        with pytest.raises(TimeoutError, match="did not complete within 0.2 seconds"):
            InterruptibleRayFuture(task_run_id=uuid.uuid4(), wrapped_future=slow).result(timeout=0.2)
    finally:
        ray.cancel(slow, force=True)


def test_the_sigterm_handler_survives_the_block(sigterm_raises):
    with keep_sigterm_handler():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # what ray.init does to it
    assert signal.getsignal(signal.SIGTERM) is _raise_stop
