"""Ray as the project starts it (rl4rec_core/ray_access.py): listening on 127.0.0.1 only, Ray's token
authentication on, and no credential in the environment of a new local instance's workers."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from rl4rec_core.ray_access import is_loopback, withheld_secrets

LOOPBACK_IPS = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _ray_processes(ray) -> list[psutil.Process]:
    """This session's Ray: the driver, the processes it started (GCS, raylet, agents, workers via the raylet),
    and any process whose command line names the session folder."""
    me = psutil.Process()
    procs = {p.pid: p for p in me.children(recursive=True)}
    procs[me.pid] = me
    session = ray._private.worker._global_node.get_session_dir_path()
    for p in psutil.process_iter(["cmdline"]):
        if any(session in part for part in (p.info["cmdline"] or [])):
            procs[p.pid] = p
    return list(procs.values())


def test_the_suite_ray_listens_on_loopback_only(ray_local):
    """Issue 14, part 6: `ss -ltnp` showed the GCS, the raylet and the dashboard agent on all interfaces."""
    ray = ray_local

    @ray.remote
    class Probe:
        def pid(self):
            return os.getpid()

    @ray.remote
    def task_pid():
        return os.getpid()

    probe = Probe.options(num_cpus=0).remote()  # a worker and an actor exist, so their servers listen too
    worker_pids = {ray.get(task_pid.remote(), timeout=120), ray.get(probe.pid.remote(), timeout=120)}
    pids = {p.pid: p for p in _ray_processes(ray)}
    assert worker_pids <= set(pids), "the task's and the actor's workers were not found among Ray's processes"
    listeners = [c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    names = {p.info["name"] for p in psutil.process_iter(["name"]) if p.pid in {c.pid for c in listeners}}
    assert {"gcs_server", "raylet"} <= names, f"Ray's servers not found among the listeners: {names}"
    outside = [f"{pids[c.pid].name()} (pid {c.pid}) on {c.laddr.ip}:{c.laddr.port}"
               for c in listeners if c.laddr.ip not in LOOPBACK_IPS]
    assert not outside, "Ray listens outside 127.0.0.1:\n" + "\n".join(outside)
    ray.kill(probe)


CONNECT = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
print("connected", len(ray.nodes()))
"""


def test_the_suite_ray_refuses_clients_without_its_token(ray_local):
    address = ray_local.get_runtime_context().gcs_address
    assert is_loopback(address), address
    # the suite's own environment (RAY_AUTH_MODE=token, the token in ~/.ray/auth_token) gets in
    ok = subprocess.run([sys.executable, "-c", CONNECT, address], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "connected 1" in ok.stdout, ok.stderr[-2000:]
    # a client with another token, and one that sends none, are refused (3 tries instead of Ray's 20)
    for bad in ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}, {"RAY_AUTH_MODE": "disabled"}):
        env = {**os.environ, **bad, "RAY_gcs_server_port_wait_time_s": "3"}
        out = subprocess.run([sys.executable, "-c", CONNECT, address], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode != 0 and "connected" not in out.stdout, bad
        assert "InvalidAuthToken" in out.stderr or "Unauthenticated" in out.stderr, out.stderr[-2000:]


WORKER = """
import os, ray
from rl4rec_core.ray_access import init_ray
init_ray("local", num_cpus=1, include_dashboard=False, log_to_driver=False)

@ray.remote
def env():
    return {k: os.environ.get(k) for k in ("HF_TOKEN", "PREFECT_API_KEY", "MLFLOW_TRACKING_PASSWORD", "RAY_AUTH_MODE")}

print("WORKER", ray.get(env.remote(), timeout=120))
print("DRIVER", os.environ.get("PREFECT_API_KEY"))
"""


def test_a_new_local_ray_gives_its_workers_only_the_named_credentials(tmp_path):
    """A local instance's workers inherit the environment of the process that started it, whatever the
    runtime_env says: the credentials the user did not name are left out of it."""
    env = {**os.environ, "HF_TOKEN": "hf_x", "PREFECT_API_KEY": "pnu_x", "MLFLOW_TRACKING_PASSWORD": "pw",
           "RL4REC_WORKER_SECRETS": "HF_TOKEN"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", WORKER], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("WORKER {'HF_TOKEN': 'hf_x', 'PREFECT_API_KEY': None, 'MLFLOW_TRACKING_PASSWORD': None, "
            "'RAY_AUTH_MODE': 'token'}") in out.stdout, out.stdout
    assert "DRIVER pnu_x" in out.stdout  # the driver keeps its own


def test_what_counts_as_a_credential(monkeypatch):
    monkeypatch.delenv("RL4REC_WORKER_SECRETS", raising=False)
    for k in ("HF_TOKEN", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_PASSWORD",
              "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "TOKENIZERS_PARALLELISM", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE"):
        monkeypatch.setenv(k, "x")
    found = set(withheld_secrets())
    assert {"HF_TOKEN", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_PASSWORD",
            "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"} <= found
    assert not {"TOKENIZERS_PARALLELISM", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE"} & found
    monkeypatch.setenv("RL4REC_WORKER_SECRETS", "GITHUB_TOKEN")
    assert "GITHUB_TOKEN" not in withheld_secrets()


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True), ("127.0.0.1", True),
    ("10.0.0.5:6379", False), ("192.0.2.2:6379", False), ("ray://10.0.0.5:10001", False), ("head:6379", False),
])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback
