"""Data-parallel scaling: steps/s of ``rl4rec train`` in one process, and on 1 and 2 Ray Train workers.

    python benchmarks/bench_scaling.py [--steps 12] [--batch_size 32] [--policies dummy,tiny-lm]

Each run trains on the tiny real-format dataset of the tests (MovieLens titles) with real MiniLM item
embeddings and one shared retrieval actor, with the same total batch and seed. Printed per run:

* wall: the whole call, Ray Train's start-up included;
* start-up: wall minus the sum of the steps' times (worker group, process group, model loading);
* step: the median step time after the first (the steady state), split into generate / reward / update;
* steps/s: 1 / median step.

Each worker reserves ``--cpus_per_worker`` CPUs and runs that many torch threads; the one-process run uses
``--threads``. Not a test: figures depend on the machine (a 2-core box can only show the overhead and that
2 workers x 1 thread is no faster than 1 process x 2 threads there; the speed-up needs a core, or a GPU,
per worker).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers: the tiny dataset and the tiny LM the tests build

from rl4rec_core.progress import quiet_when_piped  # noqa: E402


def _setup(root: Path) -> str:
    os.environ.update(RL4REC_DATA_DIR=str(root / "data"), RL4REC_EMB_DIR=str(root / "emb"),
                      RL4REC_CHECKPOINT_ROOT=str(root / "ckpt"), RL4REC_EMB_BACKEND="sentence-transformers",
                      HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from tests.helpers.tiny_lm import make_tiny_lm
    from tests.helpers.tiny_recdata import write_tiny_dataset

    write_tiny_dataset(root / "data", users_per_genre=24)
    generate_item_embeddings(load_dataset("tiny-ml"), backend="sentence-transformers")
    return make_tiny_lm(root / "tiny_lm")


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "training_log.jsonl").read_text().splitlines()]


def _row(label: str, wall: float, records: list[dict]) -> dict:
    steady = records[1:] or records
    med = {k: statistics.median(r[k] for r in steady)
           for k in ("time_step", "time_generate", "time_reward", "time_update")}
    return {"run": label, "wall": wall, "startup": wall - sum(r["time_step"] for r in records), **med,
            "steps_per_s": 1.0 / med["time_step"], "reward": records[-1]["avg_reward"]}


def run_one(policy: str, workers: int | None, args, tiny_lm: str, actor: str, root: Path) -> dict:
    import torch

    from rl4rec_core.settings import Settings

    folder = root / f"{policy}-{workers or 0}-{uuid.uuid4().hex[:6]}"
    flat = dict(dataset_name="tiny-ml", num_steps=args.steps, batch_size=args.batch_size, group_size=4,
                save_every=args.steps, log_every=args.steps, checkpoint_dir=str(folder), actor_name=actor,
                emb_backend="sentence-transformers", num_workers=workers, cpus_per_worker=args.cpus_per_worker)
    if policy == "dummy":
        flat["policy"] = "dummy"
    else:
        flat.update(policy_model=tiny_lm, max_new_tokens=args.new_tokens, lora_r=8)
    settings = Settings.of(**flat)
    t0 = time.perf_counter()
    if workers:
        from rl4rec_core.training.ray_train import train_data_parallel

        train_data_parallel(settings, progress=False)
    else:
        from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor
        from rl4rec_core.training.trainer import build_trainer

        torch.set_num_threads(args.threads)
        build_trainer(settings, RetrievalClient(get_retrieval_actor(actor, "rl4rec")), progress=False).train()
    label = f"{policy}, " + (f"{workers} worker{'s' if workers > 1 else ''}" if workers else
                             f"one process ({args.threads} threads)")
    return _row(label, time.perf_counter() - t0, _records(folder))


def main() -> None:
    quiet_when_piped()  # bars ("Loading weights", encoders) only on a terminal, never in a saved log
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch_size", type=int, default=32, help="texts per step, all workers together")
    ap.add_argument("--new_tokens", type=int, default=12)
    ap.add_argument("--policies", default="dummy,tiny-lm")
    ap.add_argument("--cpus_per_worker", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the one-process run")
    args = ap.parse_args()

    from rl4rec_core.ray_access import init_ray
    from rl4rec_core.retrieval import launch_retrieval_actor

    root = Path(tempfile.mkdtemp(prefix="rl4rec-bench-scaling-"))
    tiny_lm = _setup(root)
    init_ray("local", include_dashboard=False, namespace="rl4rec", log_to_driver=False)
    actor_name = f"RetrievalService-{uuid.uuid4().hex[:6]}"
    from rl4rec_core.settings import RetrievalSettings

    retrieval = RetrievalSettings(actor_name=actor_name, emb_backend="sentence-transformers")
    actor = launch_retrieval_actor(retrieval, ["tiny-ml"])  # noqa: F841
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.steps} steps, "
          f"batch {args.batch_size} texts (group 4), cpus_per_worker {args.cpus_per_worker:g}")
    rows = [run_one(policy, workers, args, tiny_lm, actor_name, root)
            for policy in args.policies.split(",") for workers in (None, 1, 2)]
    print("| run | wall s | start-up s | step s (median) | generate | reward | update | steps/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['wall']:.1f} | {r['startup']:.1f} | {r['time_step']:.3f} | "
              f"{r['time_generate']:.3f} | {r['time_reward']:.3f} | {r['time_update']:.3f} | {r['steps_per_s']:.2f} |")


if __name__ == "__main__":
    main()
