"""Chaos: a 300-step training through the Ray retrieval actor while the actor is killed 3 times and the
trainer is killed with -9 twice (each followed by ``--resume``) writes the same training_log.jsonl, line
for line (times aside), as a run that was never disturbed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.helpers.tiny_recdata import write_tiny_dataset

STEPS = 300
# (what to kill, when): the actor once the log has N lines, the trainer once checkpoint_step_N exists
EVENTS = [("actor", 40), ("trainer", 80), ("actor", 140), ("trainer", 200), ("actor", 250)]


def _records(path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if not k.startswith("time_")}
            for line in path.read_text().splitlines()]


def _lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _train(ckpt, actor: str, address: str, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flows.cli", "train", "--dataset_name", "tiny-ml", "--policy", "dummy",
           "--num_steps", str(STEPS), "--batch_size", "8", "--group_size", "4", "--save_every", "10",
           "--log_every", "100", "--service", "ray", "--address", address, "--actor_name", actor,
           "--no_progress", "--checkpoint_dir", str(ckpt), *(["--resume"] if resume else [])]
    return subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _run_with_chaos(ckpt, actor: str, address: str, ray) -> list[str]:
    """Train to the end, killing as ``EVENTS`` say; the events that happened, in order."""
    log, done, events = ckpt / "training_log.jsonl", [], list(EVENTS)
    proc = _train(ckpt, actor, address)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if events and events[0][0] == "actor" and _lines(log) >= events[0][1]:
            ray.kill(ray.get_actor(actor, namespace="rl4rec"), no_restart=False)  # Ray restarts it
            done.append(f"actor@{_lines(log)}")
            events.pop(0)
        elif events and events[0][0] == "trainer" and (ckpt / f"checkpoint_step_{events[0][1]}").is_dir():
            proc.send_signal(signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
            done.append(f"trainer@{events.pop(0)[1]}")
            proc = _train(ckpt, actor, address, resume=True)
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read()[-3000:]
            return done
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"the chaos run did not finish in time; events done: {done}")


@pytest.mark.slow
def test_actor_and_trainer_kills_leave_the_log_of_an_undisturbed_run(rl4rec_dirs, tmp_path, ray_local):
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from rl4rec_core.retrieval import launch_retrieval_actor, remove_retrieval_actor
    from rl4rec_core.settings import RetrievalSettings

    write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset("tiny-ml"), backend="sentence-transformers")
    actor = f"RetrievalService-{uuid.uuid4().hex[:8]}"
    retrieval = RetrievalSettings(actor_name=actor, emb_backend="sentence-transformers",
                                  max_restarts=len([e for e in EVENTS if e[0] == "actor"]))
    launch_retrieval_actor(retrieval, ["tiny-ml"], detached=True)
    address = ray_local.get_runtime_context().gcs_address
    try:
        calm = _train(tmp_path / "calm", actor, address)
        assert calm.wait(timeout=900) == 0, calm.stderr.read()[-3000:]
        expected = _records(tmp_path / "calm" / "training_log.jsonl")
        assert len(expected) == STEPS

        done = _run_with_chaos(tmp_path / "chaos", actor, address, ray_local)
        assert [e.split("@")[0] for e in done] == [kind for kind, _ in EVENTS], f"not every kill happened: {done}"
        assert _records(tmp_path / "chaos" / "training_log.jsonl") == expected
    finally:
        remove_retrieval_actor(actor, "rl4rec")
