"""``rl4rec serve``: the original's "terminal 1" — a long-lived retrieval actor on a running Ray cluster.

    ray start --head
    rl4rec serve --emb_model_name all-MiniLM-L6-v2 --emb_type item --datasets ml-100k

The actor is detached (it lives in the cluster, not in this process) and named, so learners find it
with ``ray.get_actor(name, namespace=...)``. This command waits until Ctrl-C (SIGINT) or SIGTERM,
then removes the actor so no stale service is left holding the name.

The command owns its actor by id, not by name: it watches that actor while it waits (a crash that Ray
restarts is reported; death for good ends the command with exit 1), and on stop it removes only that
actor. If its actor had died and another server took the name since, that server is left running.
A name held by a live actor is refused (exit 2) with the running actor's datasets and how to stop it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

from rl4rec_core.errors import ConfigError

# the served datasets and the actor's device; the service and its actor; the base fused with the text and
# its serving gamma; the GPUs it reserves
SETTINGS = {"run": ("dataset_name", "device"), "retrieval": None, "fusion": ("base", "gamma", "num_candidates"),
            "resources": ("num_gpus",)}


def register(subparsers) -> None:
    from rl4rec_core.cli.flags import add_settings_flags

    p = subparsers.add_parser(
        "serve",
        help="run the retrieval service (a named Ray actor) on a running Ray cluster",
        description="Start the retrieval service as a detached named Ray actor and wait for learners. "
        "--num_gpus > 0 puts it on cuda (Ray shows an actor only the GPUs it reserves).",
    )
    add_settings_flags(p, SETTINGS)
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (default: $RAY_ADDRESS, else 'auto' = the cluster `ray start --head` started here)",
    )
    p.add_argument("--status", action="store_true",
                   help="list the named actors of --namespace and whether each answers, then exit (no dashboard "
                   "needed; exit 0 when --actor_name answers)")
    p.set_defaults(func=run)


def actor_device(device: str, num_gpus: float) -> str:
    """The device the actor is started with, checked here: the actor sees a GPU only when it reserves one,
    so a CUDA device with ``--num_gpus 0`` would fail inside the actor, after the cluster connection."""
    import torch

    if device == "auto":
        return "cuda" if num_gpus > 0 else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown --device {device!r}; use auto, cpu or cuda[:i]") from None
    if kind == "cuda" and num_gpus <= 0:
        raise ConfigError(f"--device {device} needs a GPU for the actor: pass --num_gpus 1 (Ray hides GPUs from "
                          f"an actor that reserves none), or use --device cpu")
    return device


def _check_cluster_gpus(num_gpus: float) -> None:
    """A GPU actor on a cluster without (enough) GPUs would wait for a node until the start-up timeout."""
    import ray

    have = ray.cluster_resources().get("GPU", 0)
    if num_gpus > have:
        raise ConfigError(f"--num_gpus {num_gpus:g} but the Ray cluster has {have:g} GPU(s): CUDA is not available "
                          f"to the actor. Start the cluster on a GPU machine (`ray start --head --num-gpus=1`) or "
                          f"serve on the CPU with --num_gpus 0 --device cpu")


def _connect(address: str | None, namespace: str) -> None:
    from rl4rec_core.ray_access import init_ray

    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    fix = "Start one first with `ray start --head` (add --num-gpus=N on a GPU machine) or pass --address HOST:6379"
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in address:
        # ray.init retries an unreachable GCS for a long time; a plain TCP probe fails in seconds
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as e:
            raise ConfigError(f"no running Ray cluster at {address!r} ({e.strerror or e}). {fix}") from e
    try:
        init_ray(address, namespace=namespace, log_to_driver=False)  # token auth; loopback for 127.0.0.1
    except ConnectionError as e:
        raise ConfigError(f"no running Ray cluster at {address!r} ({e}). {fix}") from e


def status(args: argparse.Namespace) -> int:
    """``rl4rec serve --status``: what ``ray list actors`` showed, read from the GCS (the dashboard is off)."""
    import ray

    from rl4rec_core.ray_access import named_actors

    _connect(args.address, args.namespace)
    try:
        where, rows = ray.get_runtime_context().gcs_address, named_actors(args.namespace)
    finally:
        ray.shutdown()
    print(f"Ray at {where}, namespace {args.namespace!r}: {len(rows)} named actor(s)")
    for name, state in rows:
        print(f"  {name}: {state}")
    return 0 if dict(rows).get(args.actor_name, "").startswith("answers") else 1


def run(args: argparse.Namespace) -> int:
    from rl4rec_core.cli.flags import groups_from_args
    from rl4rec_core.settings import placed_device

    groups = groups_from_args(args, SETTINGS)
    run_settings, retrieval, resources = groups["run"], groups["retrieval"], groups["resources"]
    args.actor_name, args.namespace, args.max_restarts = retrieval.actor_name, retrieval.namespace, retrieval.max_restarts
    if args.status:
        return status(args)
    import ray

    from rl4rec_core.retrieval.actor import launch_retrieval_actor
    from rl4rec_core.retrieval.owner import actor_id

    # before connecting: a flag mistake costs no cluster wait
    device = actor_device(placed_device(run_settings, resources), resources.num_gpus)
    _connect(args.address, retrieval.namespace)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _check_cluster_gpus(resources.num_gpus)
        actor = launch_retrieval_actor(retrieval, run_settings.datasets, fusion=groups["fusion"], device=device,
                                       num_gpus=resources.num_gpus, detached=True)
        own = actor_id(actor)
        try:
            _banner(actor, args, own)
            _watch(own, args, stop)
        finally:
            # also on errors and Ctrl-C: a detached actor would otherwise outlive this command
            code = _stop(actor, own, args)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ray.shutdown()


def _banner(actor, args: argparse.Namespace, own: str) -> None:
    import ray
    import torch

    info = ray.get(actor.info.remote())
    sets = info["datasets"]
    print(f"✓ Loaded {len(sets)} dataset(s) on {info['device']}")
    for name, shape in sets.items():
        print(f"  Loaded dataset '{name}': {torch.Size(shape)}")
    print("✓ DB Server is up and running. Waiting for learners...")
    print(f"  actor {args.actor_name!r} (id {own}, namespace {args.namespace!r}); "
          f"Ctrl-C or `kill -TERM {os.getpid()}` stops it", flush=True)


def _watch(own: str, args: argparse.Namespace, stop: threading.Event) -> None:
    """Wait for a stop signal, reporting restarts of this command's actor; return early when it died for good."""
    from rl4rec_core.retrieval.owner import actor_record

    last = actor_record(own)
    while not stop.wait(1.0):
        record = actor_record(own)
        if record.dead:
            return
        if record.restarts > last.restarts:
            print(f"⚠ {args.actor_name} crashed; Ray is restarting it (restart {record.restarts} of "
                  f"{args.max_restarts}, reloading its datasets)", flush=True)
        elif record.state == "ALIVE" and last.state != "ALIVE":
            print(f"✓ {args.actor_name} is back. Waiting for learners...", flush=True)
        last = record


def _stop(actor, own: str, args: argparse.Namespace) -> int:
    """Remove this command's actor (by its handle, never by name): 0 when it was serving, 1 when it had
    died for good, saying whether the name is free or now another actor's (left running)."""
    import ray

    from rl4rec_core.retrieval.actor import find_retrieval_actor
    from rl4rec_core.retrieval.owner import actor_id, actor_record

    name = args.actor_name
    record = actor_record(own)
    if not record.dead:
        ray.kill(actor, no_restart=True)
        print(f"✓ {name} stopped.", flush=True)
        return 0
    print(f"✗ {name} (actor {own}) died for good after {record.restarts} of {args.max_restarts} restart(s): "
          f"{record.cause or record.state} Learners can no longer reach it; check its log (`ray logs`) and "
          f"start a new server with `rl4rec serve`.", file=sys.stderr)
    holder = find_retrieval_actor(name, args.namespace)
    if holder is None:
        print(f"  The name {name!r} is free; nothing was removed.", file=sys.stderr, flush=True)
    else:
        print(f"  The name {name!r} now belongs to another actor (id {actor_id(holder)}), started by someone "
              f"else; left it running.", file=sys.stderr, flush=True)
    return 1
