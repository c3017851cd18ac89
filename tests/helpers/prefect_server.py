"""A full ``prefect server start`` (with its background services) on a free port, for the deployment tests:
a process worker and ``prefect deploy`` need the real server, not the temporary API ``rl4rec run`` starts;
and the ``prefect`` command line as those tests run it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from flows.prefect_server import free_port, healthy
from rl4rec_core.errors import Rl4recError

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def background_server(port: int | None = None, startup_timeout: float = 180) -> Iterator[tuple[str, Path]]:
    """``(api_url, log_file)`` of a ``prefect server start`` child process, terminated on exit."""
    port = port or free_port()
    api = f"http://127.0.0.1:{port}/api"
    log_file = Path(tempfile.gettempdir()) / f"rl4rec-prefect-server-{port}.log"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": api}
    env.pop("PREFECT_API_URL", None)  # the server must not think it is a client of another one
    with open(log_file, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while not healthy(api):
            if proc.poll() is not None:
                raise Rl4recError(
                    f"`prefect server start` exited with code {proc.returncode}; see {log_file}. Set PREFECT_API_URL "
                    f"to a running server instead (start one with `prefect server start`)"
                )
            if time.monotonic() > deadline:
                raise Rl4recError(
                    f"the Prefect server did not answer on {api} within {startup_timeout:.0f} s; see {log_file}"
                )
            time.sleep(0.5)
        yield api, log_file
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def prefect_cli(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    """``prefect --no-prompt ARGS`` in the repository root (where ``prefect deploy`` finds prefect.yaml); its stdout."""
    out = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"prefect {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout
