"""``rl4rec serve`` as a user runs it: a separate `ray start --head` cluster, started as the README says
(token authentication, bound to 127.0.0.1), then the server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.embeddings import random_items, write_embeddings
from tests.helpers.ray_cluster import cluster_listeners, readme_cluster

BANNER = [
    "✓ Loaded 2 dataset(s) on cpu",
    "  Loaded dataset 'ml-100k': torch.Size([1682, 384])",
    "  Loaded dataset 'toy-b': torch.Size([50, 384])",
    "✓ DB Server is up and running. Waiting for learners...",
]

CLIENT = """
import ray, sys
from rl4rec_core.retrieval import RetrievalClient
ray.init(address=sys.argv[1], namespace="rl4rec", log_to_driver=False)
client = RetrievalClient(name="RetrievalService")
out = client.compute_rewards(["a comedy"], "ml-100k", [5], [[1, 2]], reward="mrr")
print("ranks", out.ranks.tolist(), client.datasets())
"""


@pytest.mark.slow
def test_serve_prints_banner_answers_learners_and_stops_cleanly(rl4rec_dirs):
    write_embeddings("ml-100k", random_items(1682))
    write_embeddings("toy-b", random_items(50, seed=3))
    server = None
    with readme_cluster("r4r") as (env, temp_dir):
        try:
            cmd = [sys.executable, "-m", "flows.cli", "serve", "--emb_model_name", "all-MiniLM-L6-v2",
                   "--emb_type", "item", "--datasets", "ml-100k", "toy-b", "--actor_name", "RetrievalService",
                   "--namespace", "rl4rec", "--num_gpus", "0", "--emb_backend", "sentence-transformers"]
            server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines = []
            deadline = time.monotonic() + 240
            while len(lines) < len(BANNER) and time.monotonic() < deadline:
                line = server.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
            assert lines == BANNER, server.stderr.read() if server.poll() is not None else lines

            # a learner in another process finds the actor by name and gets rewards
            learner = subprocess.run([sys.executable, "-c", CLIENT, env["RAY_ADDRESS"]], env=env,
                                     capture_output=True, text=True, timeout=120)
            assert learner.returncode == 0, learner.stderr
            assert "ranks [" in learner.stdout and "'toy-b': (50, 384)" in learner.stdout

            # the troubleshooting command, without the dashboard; and nothing of the cluster listens beyond 127.0.0.1
            status = subprocess.run([sys.executable, "-m", "flows.cli", "serve", "--status"], env=env,
                                    capture_output=True, text=True, timeout=120)
            assert status.returncode == 0, status.stderr
            assert "RetrievalService: answers: on cpu, datasets ml-100k (1682, 384), toy-b (50, 384)" in status.stdout
            listeners = cluster_listeners(temp_dir)
            assert any(x.startswith("gcs_server ") for x in listeners), listeners
            assert all(x.split()[1].rpartition(":")[0] in ("127.0.0.1", "::ffff:127.0.0.1") for x in listeners), listeners

            # a second server under the same name is refused with a clear message
            second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2 and "already runs" in second.stderr

            server.send_signal(signal.SIGINT)
            rest, _ = server.communicate(timeout=60)
            assert server.returncode == 0
            assert "✓ RetrievalService stopped." in rest
            gone = subprocess.run([sys.executable, "-c", CLIENT, env["RAY_ADDRESS"]], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert gone.returncode != 0 and "❌ Error: RetrievalService not found!" in gone.stderr
            status = subprocess.run([sys.executable, "-m", "flows.cli", "serve", "--status"], env=env,
                                    capture_output=True, text=True, timeout=120)
            assert status.returncode == 1 and "RetrievalService" not in status.stdout, status.stdout + status.stderr
        finally:
            if server is not None and server.poll() is None:
                server.kill()


def test_serve_without_a_cluster_says_how_to_start_one(rl4rec_dirs):
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", "--datasets", "ml-100k", "--address", "127.0.0.1:1"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "ray start --head" in out.stderr
