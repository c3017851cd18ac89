"""``rl4rec run``: the whole pipeline on the offline defaults, with whatever it needs started locally.

    rl4rec run                # the fused recipe (docs/recipe.md): SASRec, its top 5 as candidates, SFT, GRPO of
                              #   SmolLM2-135M-Instruct, all-MiniLM-L6-v2 retrieval, MovieLens-100k (~70 min on 2 cores)
    rl4rec run --quick        # dummy policy, 20 steps: a quick look at every part (minutes, mostly start-up)
    rl4rec run --profile text # the text-only design (no base recommender): the settings' own defaults

Needs nothing running: a local Ray is started by the flow's task runner (or ``RAY_ADDRESS`` is
used), a Prefect API is started in the background unless ``PREFECT_API_URL`` is configured, and
MLflow writes to ``mlruns/`` (or ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from typing import Any

from rl4rec_core.errors import Rl4recError
from rl4rec_core.settings import ALL_GROUPS

# every field of every group a pipeline takes (a group added to the settings is a flag group here too)
SETTINGS = dict.fromkeys(ALL_GROUPS)


def register(subparsers) -> None:
    from rl4rec_core.cli.flags import add_settings_flags
    from rl4rec_core.settings import DEFAULT_RUN_PROFILE, PROFILES

    p = subparsers.add_parser(
        "run",
        help="run the whole pipeline (data, embeddings, retrieval actor, RL training, evaluation, registry)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", choices=tuple(PROFILES), default=None,
                   help=f"settings profile, flags given win: {'; '.join(f'{k}: {v or None}' for k, v in PROFILES.items())} "
                        f"(default: {DEFAULT_RUN_PROFILE}; text = the settings' own defaults)")
    p.add_argument("--quick", action="store_true", help=f"the quick profile: {PROFILES['quick']} (flags given win)")
    # also after the command; SUPPRESS keeps `rl4rec -v run` from being reset by this parser's default
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="every log line of every library and Ray worker (default: progress, warnings, the summary)")
    # every group a pipeline takes; None = not given, so --quick's profile can fill what was not given
    add_settings_flags(p, SETTINGS, given_only=tuple(ALL_GROUPS))
    p.set_defaults(func=run)


def flow_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline_flow parameters (settings groups) for these flags; the profile (``--profile``, ``--quick``,
    else the fused recipe) fills what was not given (``settings.apply_profile``), the settings' defaults the rest."""
    from rl4rec_core.cli.flags import given, groups_from_args
    from rl4rec_core.settings import DEFAULT_RUN_PROFILE, apply_profile

    if args.quick and getattr(args, "profile", None) not in (None, "quick"):
        raise Rl4recError(f"--quick is the quick profile; drop it or --profile {args.profile}")
    profile = "quick" if args.quick else (getattr(args, "profile", None) or DEFAULT_RUN_PROFILE)
    named = set().union(*(given(args, cls) for cls in ALL_GROUPS.values()))
    return apply_profile(groups_from_args(args, SETTINGS), profile, given=named)


@contextlib.contextmanager
def prefect_api():
    """``(api_url, how)``: the configured API if it answers, else Prefect's temporary API server."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.prefect_server import configured_api_url, healthy

    url = configured_api_url()
    if url:
        if not healthy(url, timeout=5):
            raise Rl4recError(
                f"PREFECT_API_URL={url} does not answer; start that server (`prefect server start`) or unset "
                f"PREFECT_API_URL to let `rl4rec run` start one for itself"
            )
        yield url, "configured (PREFECT_API_URL)"
        _drain_prefect()
        return
    print("Starting a Prefect server in the background (PREFECT_API_URL is not set) ...", flush=True)
    t0 = time.perf_counter()
    # Prefect's own temporary API server (what its ephemeral mode runs), on a free port, stopped at the end;
    # it keeps the runs in the user's default database, so `prefect server start` shows them later
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls from a closed box
    server = SubprocessASGIServer()
    try:
        server.start(timeout=180)
    except RuntimeError as e:
        raise Rl4recError(f"could not start a Prefect API server ({e}); set PREFECT_API_URL to a running "
                          "server instead (start one with `prefect server start`)") from None
    url = server.api_url
    os.environ["PREFECT_API_URL"] = url  # for Ray workers started below
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url, f"started for this command in {time.perf_counter() - t0:.0f} s"
            _drain_prefect()
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _drain_prefect() -> None:
    """Send the logs and events still queued to the API while it is up (else they retry at exit)."""
    with contextlib.suppress(Exception):
        from prefect.logging.handlers import APILogHandler

        APILogHandler.flush()
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)


def task_timeline(flow_run_id: str) -> tuple[float, list[tuple[str, str, float]]]:
    """``(seconds covered by task runs, [(task, state, seconds)])`` read back from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    spans, rows = [], []
    for r in runs:
        if r.start_time and r.end_time:
            spans.append((r.start_time.timestamp(), r.end_time.timestamp()))
        secs = (r.end_time - r.start_time).total_seconds() if r.start_time and r.end_time else 0.0
        rows.append((r.name, r.state_type.value if r.state_type else "?", secs))
    covered, end = 0.0, float("-inf")
    for a, b in sorted(spans):  # union of intervals: tasks that ran side by side count once
        if b > end:
            covered += b - max(a, end)
            end = b
    return covered, sorted(rows, key=lambda x: x[0])


def run(args: argparse.Namespace) -> int:
    from flows import console

    verbose = bool(getattr(args, "verbose", False))
    console.prepare(verbose)  # before Prefect, Ray and MLflow configure their logging
    from flows.params import FlowParams
    from tasks import tracking as mt

    t_start = time.perf_counter()
    params = flow_parameters(args)
    checked = FlowParams.of(**params).check_inputs()  # bad flags fail here, before any server, cluster or model
    from flows.pipeline import pipeline_flow

    console.unify(verbose)
    uri = mt.configure_mlflow()
    store = open_store_meanwhile(checked.tracking.experiment)
    with prefect_api() as (api_url, how), console.task_bar(enabled=not verbose):
        store.join()
        print(f"Prefect API: {api_url} — {how}", flush=True)
        print(f"MLflow store: {uri}", flush=True)
        t_flow = time.perf_counter()
        out = pipeline_flow(**params)
        flow_wall = time.perf_counter() - t_flow
        work, tasks = task_timeline(out["flow_run_id"])
    wall = time.perf_counter() - t_start
    print_summary(out, params, api_url, uri, (wall, flow_wall, work), tasks)
    return 0


def open_store_meanwhile(experiment: str) -> threading.Thread:
    """Open the MLflow store (a new SQLite store migrates its schema: seconds) and its experiment in a thread,
    while the Prefect API server starts in its own process; the flow's first MLflow call then finds both
    ready. A failure here is left for that call to report, with its own message.

    Both sides import SQLAlchemy's ORM, whose modules import each other: imported by two threads at once, one
    of them meets a partly initialised module (ImportError). So this thread imports them all first."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (the store's modules, SQLAlchemy's ORM)
    import prefect.server.api.server  # noqa: F401  (what prefect_api imports next)

    from tasks import tracking as mt

    def open_store() -> None:
        with contextlib.suppress(Exception):
            mt.ensure_experiment(experiment)

    thread = threading.Thread(target=open_store, name="rl4rec-mlflow-store", daemon=True)
    thread.start()
    return thread


def print_summary(out, params, api_url, uri, times, tasks) -> None:
    from rl4rec_core.evaluation.ranking import format_table

    print("=" * 78)
    policy = params["policy"]
    kind = "dummy policy" if policy.policy == "dummy" else policy.policy_model
    print(f"rl4rec pipeline finished: {params['run'].dataset_name}, {kind}, {params['trainer'].num_steps} steps")
    start = f"; policy started from {out['start']}" if out.get("start") else ""
    print(f"\nEvaluation on {params['evaluation'].eval_split} ({out['evaluation']['policy'].get('users', '?')} users; "
          f"full ranking, history masked; LLM rows scored by {out.get('scorer', 'cosine')}{start}):")
    print(format_table({k: {m: v for m, v in row.items() if m != "users"} for k, row in out["evaluation"].items()}))
    if out.get("intervals"):
        from rl4rec_core.evaluation.bootstrap import format_intervals

        print("Paired differences on the same users (bootstrap 95% intervals):")
        print(format_intervals([r for r in out["intervals"] if r["metric"] == "ndcg@10"]))
    last = out.get("last_step") or {}
    if last:
        print(f"Last training step: reward {last.get('avg_reward', float('nan')):.4f}, "
              f"loss {last.get('loss', float('nan')):.4f}, kl {last.get('kl', float('nan')):.4f}")
    print(f"\nCheckpoint:        {out['checkpoint']}")
    print(f"MLflow run:        {out['mlflow_run_id']}  (experiment {params['tracking'].experiment!r})")
    alias = "challenger" + (", champion" if out["promoted"] else "")
    print(f"Registered model:  {out['model_name']} version {out['version']} (aliases: {alias})")
    print(f"Prefect flow run:  {out['flow_run_id']}")
    print(f"Ray:               {ray_access_line()}")
    print_times(tasks, *times)
    print_uis(api_url, uri)


def ray_access_line() -> str:
    """Where the tasks ran and how Ray was guarded (rl4rec_core/ray_access.py set it up)."""
    from rl4rec_core.ray_access import AUTH_VAR

    address = os.environ.get("RAY_ADDRESS")
    where = f"cluster at {address}" if address else "a local instance on 127.0.0.1, stopped at the end"
    mode = os.environ.get(AUTH_VAR, "token").lower()
    auth = ("token authentication (Ray's token: ~/.ray/auth_token)" if mode == "token"
            else f"authentication OFF ({AUTH_VAR}={mode})")
    return f"{where}; {auth}"


def print_times(tasks, wall, flow_wall, work) -> None:
    """Task times (from the Prefect API) on a few lines, longest first; any state but COMPLETED is named."""
    import textwrap

    per: dict[str, list[float]] = {}
    odd = []
    for name, state, secs in tasks:
        base = name.rsplit("-", 1)[0]
        per.setdefault(base, []).append(secs)
        if state != "COMPLETED":
            odd.append(f"{name} {state}")
    parts = [f"{n} {'+'.join(f'{s:.1f}' for s in v)} s" for n, v in sorted(per.items(), key=lambda kv: -sum(kv[1]))]
    states = f"; NOT COMPLETED: {', '.join(odd)}" if odd else ", all completed"
    text = f"Tasks ({len(tasks)}{states}): " + ", ".join(parts)
    print("\n" + "\n".join(textwrap.wrap(text, width=110, subsequent_indent="  ")))
    process = ""
    with contextlib.suppress(Exception):
        import psutil

        process = f" ({time.time() - psutil.Process().create_time():.1f} s with Python start-up and imports)"
    print(f"Wall time {wall:.1f} s{process}: flow {flow_wall:.1f} s, of which tasks ran {work:.1f} s; "
          f"outside the work (Prefect server/API, Ray start, MLflow) {wall - work:.1f} s")


def print_uis(api_url: str, uri: str) -> None:
    store = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    mlflow_ui = f"mlflow ui --backend-store-uri {'sqlite:///' + os.path.relpath(store) if store else uri}"
    if os.environ.get("PREFECT_API_URL") or "127.0.0.1:4200" in api_url:
        prefect_ui = f"Prefect UI {api_url.removesuffix('/api')}"
    else:
        prefect_ui = "`prefect server start` then http://127.0.0.1:4200 (this run is in ~/.prefect/prefect.db)"
    print(f"UIs: {mlflow_ui} (http://127.0.0.1:5000); {prefect_ui}")
