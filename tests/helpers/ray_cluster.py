"""A `ray start --head` cluster of a test's own, started the way the README says (Ray's token
authentication on, every server on 127.0.0.1), and stopped without touching other clusters."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil


def ray_cli(args: list[str], env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    ray_bin = Path(sys.executable).with_name("ray")
    return subprocess.run([str(ray_bin), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _processes(temp_dir: str) -> dict[int, psutil.Process]:
    """The cluster's processes (found by its temp folder on their command line) and their children."""
    procs: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in p.info["cmdline"] or []):
                procs.update({c.pid: c for c in [p, *p.children(recursive=True)]})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return procs


def cluster_listeners(temp_dir: str) -> list[str]:
    """``name ip:port`` of every listening socket of the cluster."""
    procs = _processes(temp_dir)
    return [f"{procs[c.pid].name()} {c.laddr.ip}:{c.laddr.port}" for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in procs]


def stop_cluster(temp_dir: str) -> None:
    """Stop only this cluster's processes (`ray stop` would stop every cluster on the machine)."""
    mine = list(_processes(temp_dir).values())
    for p in mine:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(mine, timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


@contextlib.contextmanager
def readme_cluster(prefix: str, port_offset: int = 0, num_cpus: int = 1) -> Iterator[tuple[dict, str]]:
    """``(environment that reaches the cluster, its temp folder)``; the cluster is stopped at the end."""
    temp_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")  # Ray's socket paths must stay under 107 characters
    port = str(20000 + (os.getpid() + port_offset) % 20000)
    # Ray's token (created once, kept by Ray in ~/.ray/auth_token), auth on, 127.0.0.1 only
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_ADDRESS": f"127.0.0.1:{port}"}
    token = ray_cli(["get-auth-token", "--generate"], env)
    assert token.returncode == 0, token.stderr
    started = ray_cli(["start", "--head", f"--port={port}", f"--num-cpus={num_cpus}", f"--temp-dir={temp_dir}",
                       "--include-dashboard=false", "--disable-usage-stats"], env)
    assert started.returncode == 0, started.stderr
    try:
        yield env, temp_dir
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
