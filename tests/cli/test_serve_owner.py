"""``rl4rec serve`` owns its actor by id (issue 14, part 4): it watches that actor, removes only that
actor, and refuses a name a live actor holds. Real `ray start --head` cluster, real servers, no mocks."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.embeddings import random_items, write_embeddings
from tests.helpers.ray_cluster import readme_cluster

NS = "rl4rec"
SERVE = [sys.executable, "-m", "flows.cli", "serve", "--datasets", "toy-s", "--emb_model_name", "all-MiniLM-L6-v2",
         "--emb_type", "item", "--namespace", NS, "--num_gpus", "0", "--emb_backend", "sentence-transformers"]

# another process on the cluster: kills the named actor for good, crashes its process, or learns from it
CTL = """
import os, signal, sys, ray
from ray._private import state
from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor
address, action, name = sys.argv[1:4]
ray.init(address=address, namespace="rl4rec", log_to_driver=False)
actor = get_retrieval_actor(name, "rl4rec")
if action == "kill":
    ray.kill(actor, no_restart=True)
elif action == "crash":
    os.kill(state.actors(actor._actor_id.hex())["Pid"], signal.SIGKILL)
else:
    out = RetrievalClient(actor, name=name).compute_rewards(["a comedy"], "toy-s", [5], [[1, 2]], reward="mrr")
    print("ranks", out.ranks.tolist(), "actor", actor._actor_id.hex())
"""


@pytest.fixture(scope="module")
def cluster():
    """A `ray start --head` cluster for this module, started as the README says (token authentication,
    bound to 127.0.0.1): the environment that reaches it."""
    with readme_cluster("r4o", port_offset=7919) as (env, _):
        yield env


@pytest.fixture
def env(cluster, rl4rec_dirs):
    write_embeddings("toy-s", random_items(50, seed=5))
    return {**cluster, **{k: os.environ[k] for k in ("RL4REC_DATA_DIR", "RL4REC_EMB_DIR", "RL4REC_CHECKPOINT_ROOT")}}


class Server:
    """A running `rl4rec serve`: its stdout lines arrive on a queue, its stderr goes to a file."""

    def __init__(self, env: dict, name: str, tmp: Path, *extra: str) -> None:
        self.name, self.err_path = name, tmp / f"serve-{name}-{time.monotonic_ns()}.err"
        with self.err_path.open("w") as err:
            self.proc = subprocess.Popen([*SERVE, "--actor_name", name, *extra], env=env,
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("Waiting for learners", timeout=240)
        # its actor's id, as a learner sees it
        learner = _ctl(env, "learn", name)
        assert learner.returncode == 0, learner.stderr
        self.actor_id = learner.stdout.split("actor ")[1].strip()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, text: str, timeout: float = 120) -> str:
        """The next stdout line that contains ``text``; fails when the server exits or stays silent."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name}: no line with {text!r} within {timeout:.0f} s") from None
            if line is None:
                raise AssertionError(f"{self.name} exited ({self.proc.wait()}) before {text!r}: {self.stderr()}")
            if text in line:
                return line

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Exit code and stderr once the server has exited on its own (or after a signal)."""
        try:
            return self.proc.wait(timeout=timeout), self.stderr()
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs {timeout:.0f} s later") from None

    def stderr(self) -> str:
        return self.err_path.read_text()

    def close(self) -> None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def _ctl(env: dict, action: str, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CTL, env["RAY_ADDRESS"], action, name], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_serve_says_when_its_actor_was_killed_for_good_and_exits_1(env, tmp_path):
    server = Server(env, "Owner-killed", tmp_path)
    try:
        assert _ctl(env, "kill", server.name).returncode == 0
        code, err = server.finish()  # before: waited for learners forever
        assert code == 1
        assert f"✗ Owner-killed (actor {server.actor_id}) died for good after 0 of 3 restart(s)" in err
        assert "killed by `ray.kill`" in err and "The name 'Owner-killed' is free" in err
        assert "Traceback" not in err
    finally:
        server.close()


@pytest.mark.slow
def test_serve_reports_a_restart_and_exits_1_when_ray_gives_up(env, tmp_path):
    server = Server(env, "Owner-crashed", tmp_path, "--max_restarts", "1")
    try:
        assert _ctl(env, "crash", server.name).returncode == 0
        server.expect("⚠ Owner-crashed crashed; Ray is restarting it (restart 1 of 1")
        server.expect("✓ Owner-crashed is back", timeout=180)
        learner = _ctl(env, "learn", server.name)
        assert learner.returncode == 0 and f"actor {server.actor_id}" in learner.stdout, learner.stderr
        assert _ctl(env, "crash", server.name).returncode == 0
        code, err = server.finish()
        assert code == 1
        assert f"✗ Owner-crashed (actor {server.actor_id}) died for good after 1 of 1 restart(s)" in err
        assert "worker process has died" in err
    finally:
        server.close()


@pytest.mark.slow
def test_a_second_serve_under_a_live_name_is_refused_naming_the_running_one(env, tmp_path):
    server = Server(env, "Owner-taken", tmp_path)
    try:
        second = subprocess.run([*SERVE, "--actor_name", server.name], env=env, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2
        err = second.stderr
        assert "a retrieval actor named 'Owner-taken' already runs in namespace 'rl4rec'" in err
        assert f"actor id {server.actor_id}, ALIVE, datasets: toy-s (50 items)" in err
        assert f"pid {server.proc.pid} on " in err and f"`kill -TERM {server.proc.pid}`" in err
        assert "pick another --actor_name" in err and "Traceback" not in err
        # the refusal left the running server alone
        assert f"actor {server.actor_id}" in _ctl(env, "learn", server.name).stdout
        server.proc.send_signal(signal.SIGINT)
        server.expect("✓ Owner-taken stopped.")
        assert server.finish()[0] == 0
    finally:
        server.close()


@pytest.mark.slow
def test_stopping_a_stale_serve_leaves_the_new_servers_actor(env, tmp_path):
    stale = Server(env, "Owner-stale", tmp_path)
    fresh = None
    try:
        # A is frozen while its actor dies for good, so it is still "waiting for learners" when B starts
        stale.proc.send_signal(signal.SIGSTOP)
        assert _ctl(env, "kill", stale.name).returncode == 0
        fresh = Server(env, "Owner-stale", tmp_path)
        assert fresh.actor_id != stale.actor_id
        stale.proc.send_signal(signal.SIGTERM)
        stale.proc.send_signal(signal.SIGCONT)
        code, err = stale.finish()
        # before: A removed whatever held the name, B's actor, and the learner got "not found"
        learner = _ctl(env, "learn", "Owner-stale")
        assert learner.returncode == 0, learner.stderr
        assert f"actor {fresh.actor_id}" in learner.stdout
        assert code == 1
        assert f"✗ Owner-stale (actor {stale.actor_id}) died for good" in err
        assert f"The name 'Owner-stale' now belongs to another actor (id {fresh.actor_id})" in err
        assert "left it running" in err
        fresh.proc.send_signal(signal.SIGTERM)
        fresh.expect("✓ Owner-stale stopped.")
        assert fresh.finish()[0] == 0
    finally:
        stale.close()
        if fresh is not None:
            fresh.close()
