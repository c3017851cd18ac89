"""A Prefect API for commands run outside any configured server: ``prefect server start`` in the
background on a free port, stopped when the command ends. Its database is the user's default
(``~/.prefect/prefect.db``), so the runs stay visible in the UI after a later ``prefect server start``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rl4rec_core.errors import Rl4recError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile, if any."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or None


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
