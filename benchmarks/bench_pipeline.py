"""Where the wall time of ``rl4rec run --quick`` goes, from the process start to its exit.

    rl4rec data prepare --dataset ml-100k && rl4rec embed --dataset ml-100k
    python benchmarks/bench_pipeline.py                 # one run, in a fresh folder (a new MLflow store)
    python benchmarks/bench_pipeline.py --runs 2        # the second run finds the cached tasks warm
    python benchmarks/bench_pipeline.py -- --num_steps 40   # anything after -- goes to `rl4rec run --quick`

Each run is a child process that runs ``rl4rec run --quick`` as the console command does (``flows.cli.main``),
with timers wrapped around the pieces in this process (the flow's driver): imports, the Prefect API server,
Ray's start and shutdown, MLflow calls, Prefect artifacts, the summary; the tasks' own times are read back from
the Prefect API (their start and end, as recorded by the task runs in the Ray workers). The parent measures
the child's wall time to its exit. "between tasks" is the flow's wall time covered neither by a task nor by a
timed piece of the driver: Prefect's flow/task run bookkeeping, Ray scheduling, results crossing processes.

Not a test: figures depend on the machine and on what else runs on it (say so when quoting them).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rl4rec_core.progress import quiet_when_piped  # noqa: E402

MARKS: dict[str, float] = {}  # child: wall-clock times (time.time) of the phases
SPANS: dict[str, list[float]] = defaultdict(list)  # child: durations of the wrapped driver calls


def _timed(label: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPANS[label].append(time.perf_counter() - t0)
    return wrapper


def _wrap(owner, name: str, label: str) -> None:
    setattr(owner, name, _timed(label, getattr(owner, name)))


def _instrument() -> None:
    """Timers around the driver's pieces, set before ``flows.pipeline`` imports them by name."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from prefect.server.api.server import SubprocessASGIServer

    from flows import artifacts, run_cli, stages
    from tasks import lineage, registry, runtime, tracking

    _wrap(SubprocessASGIServer, "start", "Prefect API server: start")
    _wrap(SubprocessASGIServer, "stop", "Prefect API server: stop")
    _wrap(runtime.LazyRayTaskRunner, "_join_ray", "Ray: start")
    _wrap(runtime.LazyRayTaskRunner, "__exit__", "Ray: shutdown")
    for name in ("configure_mlflow", "start_run", "log_dict", "log_metrics", "log_table", "set_tags", "end_run",
                 "log_artifact"):
        _wrap(tracking, name, "MLflow: driver logging")
    _wrap(SystemMetricsMonitor, "start", "MLflow: driver logging")
    _wrap(SystemMetricsMonitor, "finish", "MLflow: driver logging")
    _wrap(lineage, "log_datasets", "MLflow: driver logging")
    _wrap(registry, "wants_promotion", "MLflow: driver logging")  # record_registration: its set_tags is timed
    _wrap(stages, "stop_retrieval_service", "Ray: remove the retrieval actor")
    for name in ("link_mlflow_run", "evaluation_table"):
        _wrap(artifacts, name, "Prefect artifacts (driver)")
    _wrap(run_cli, "print_summary", "summary")
    original_timeline = run_cli.task_timeline

    def task_timeline(flow_run_id):
        MARKS["flow end"] = time.time()
        MARKS["tasks"] = _task_spans(flow_run_id)
        return original_timeline(flow_run_id)

    run_cli.task_timeline = task_timeline
    import flows.pipeline as pipeline

    flow = pipeline.pipeline_flow

    def pipeline_flow(**params):
        MARKS["flow start"] = time.time()
        return flow(**params)

    pipeline.pipeline_flow = pipeline_flow


def _task_spans(flow_run_id: str) -> list[tuple[str, float, float]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [(r.name.rsplit("-", 1)[0], r.start_time.timestamp(), r.end_time.timestamp())
            for r in runs if r.start_time and r.end_time]


def child(out: Path, run_args: list[str]) -> int:
    """One ``rl4rec run --quick``, timed from inside; the marks go to ``out``."""
    import psutil

    MARKS["process start"] = psutil.Process().create_time()
    from flows import console

    console.prepare(verbose=False)  # what `rl4rec run` does first, before the libraries configure logging
    import flows.cli  # noqa: F401  (the command, then everything the pipeline imports in this process)
    import flows.pipeline  # noqa: F401
    import flows.run_cli  # noqa: F401
    import mlflow  # noqa: F401
    import ray  # noqa: F401

    MARKS["imports done"] = time.time()
    _instrument()
    try:
        code = flows.cli.main(["run", "--quick", *run_args])
    finally:
        MARKS["main returned"] = time.time()
        out.write_text(json.dumps({"marks": MARKS, "spans": SPANS}))
    return code


def _union(spans: list[tuple[float, float]]) -> float:
    covered, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            covered += b - max(a, end)
            end = b
    return covered


def breakdown(data: dict, process_end: float) -> list[tuple[str, float]]:
    """``[(phase, seconds)]`` that add up to the process's wall time."""
    m, spans = data["marks"], {k: sum(v) for k, v in data["spans"].items()}
    tasks = [tuple(t) for t in m["tasks"]]
    per_task: dict[str, float] = defaultdict(float)
    for name, a, b in tasks:
        per_task[name] += b - a
    server = spans.pop("Prefect API server: start", 0.0)
    rows = [("Python start-up and imports", m["imports done"] - m["process start"]),
            ("Prefect API server: start", server),
            ("CLI before the flow (settings, MLflow store)", m["flow start"] - m["imports done"] - server)]
    flow = m["flow end"] - m["flow start"]
    driver = {k: v for k, v in spans.items() if k not in ("summary", "Prefect API server: stop")}
    work = _union([(a, b) for _, a, b in tasks])
    rows += [(f"task {name}", secs) for name, secs in sorted(per_task.items(), key=lambda kv: -kv[1])]
    overlap = sum(per_task.values()) - work
    if overlap > 0.05:
        rows.append(("  (tasks running side by side: counted once)", -overlap))
    rows += sorted(driver.items(), key=lambda kv: -kv[1])
    rows.append(("between tasks (Prefect run bookkeeping, Ray scheduling, results)", flow - work - sum(driver.values())))
    rows.append(("summary, Prefect drain and server stop", m["main returned"] - m["flow end"]))
    rows.append(("process exit (atexit, interpreter shutdown)", process_end - m["main returned"]))
    return rows


def report(rows: list[tuple[str, float]], wall: float, work: float) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'phase':<{width}}  {'seconds':>8}  {'share':>6}")
    for name, secs in rows:
        print(f"{name:<{width}}  {secs:8.1f}  {100 * secs / wall:5.1f}%")
    print(f"{'wall (process start to exit)':<{width}}  {wall:8.1f}  100.0%")
    print(f"tasks' work {work:.1f} s; outside the work {wall - work:.1f} s ({100 * (wall - work) / wall:.0f}%)")


def main() -> None:
    quiet_when_piped()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="runs one after the other, in the same folder")
    ap.add_argument("--folder", help="where the runs work (mlruns/, checkpoints/); default: a fresh temporary one")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("run_args", nargs="*", help="after --: more flags of `rl4rec run --quick`")
    args = ap.parse_args()
    if args.child:
        sys.exit(child(Path(args.child), args.run_args))
    folder = Path(args.folder or tempfile.mkdtemp(prefix="rl4rec-bench-pipeline-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # the prepared data and embeddings of this checkout; MLflow, checkpoints in the run's folder
    env.setdefault("RL4REC_DATA_DIR", str((ROOT / "data").resolve()))
    env.setdefault("RL4REC_EMB_DIR", str((ROOT / "data_emb").resolve()))
    print(f"rl4rec run --quick {' '.join(args.run_args)} in {folder}; {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f} at the start")
    for i in range(1, args.runs + 1):
        marks = folder / f"marks_{i}.json"
        start = time.time()
        proc = subprocess.run([sys.executable, __file__, "--child", str(marks), "--", *args.run_args], cwd=folder,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        end = time.time()
        if proc.returncode != 0:
            print(proc.stdout[-4000:])
            sys.exit(f"run {i} failed with exit code {proc.returncode}")
        data = json.loads(marks.read_text())
        rows = breakdown(data, end)
        work = _union([(a, b) for _, a, b in data["marks"]["tasks"]])
        print(f"\nrun {i}: wall {end - data['marks']['process start']:.1f} s "
              f"(parent's clock from spawn: {end - start:.1f} s)")
        report(rows, end - data["marks"]["process start"], work)


if __name__ == "__main__":
    main()
