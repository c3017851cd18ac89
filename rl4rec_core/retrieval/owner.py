"""Who owns a retrieval actor: its Ray actor id, its state in the GCS, and the process that started it.

A name passes from a dead actor to the next one started under it, so whoever started an actor keeps
its id (:func:`actor_id`) and removes or watches only that actor. The state comes from the GCS
itself (``ray._private.state``), which needs no dashboard, unlike ``ray.util.state``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError, RayActorError

# states in which an actor holds its name and may serve again
LIVE_STATES = ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING")


def actor_id(actor) -> str:
    """The Ray actor id of a handle, as hex: what stays the same while a name passes to another actor."""
    return actor._actor_id.hex()


@dataclass(frozen=True)
class ActorRecord:
    """An actor as the GCS knows it: ``state`` is ``GONE`` when the GCS has no record of it."""

    state: str
    restarts: int = 0
    cause: str = ""
    job_id: str = ""

    @property
    def dead(self) -> bool:
        """Dead for good: killed, out of restarts, or unknown to the GCS. It will not serve again."""
        return self.state not in LIVE_STATES


def actor_record(actor_hex: str) -> ActorRecord:
    """The GCS record of the actor with this id (``ray`` must be initialised)."""
    from ray._private import state

    info = state.actors(actor_id=actor_hex)
    if not info:
        return ActorRecord("GONE", cause="the Ray cluster has no record of it")
    return ActorRecord(info["State"], int(info["NumRestarts"]), _death_reason(info.get("DeathCause")), info["JobID"])


def _death_reason(cause) -> str:
    """The first sentence of Ray's death cause, e.g. ``The actor is dead because it was killed by `ray.kill`.``"""
    if cause is None or not cause.ByteSize():
        return ""
    context = getattr(cause, cause.WhichOneof("context") or "", None)
    for field in ("error_message", "formatted_exception_string"):
        text = str(getattr(context, field, "") or "").strip()
        if text:
            first = text.split(". ")[0].rstrip(".")
            return first + "."
    return ""


def starter(job_id: str) -> tuple[int, str, bool] | None:
    """``(pid, host, still running)`` of the driver whose job started an actor; None when unknown."""
    from ray._private import state

    for job in state.state.job_table():
        if job["JobID"] == job_id:
            return int(job["DriverPid"]), job["DriverIPAddress"], not job["IsDead"]
    return None


def name_taken_message(name: str, namespace: str, actor, timeout_s: float = 10) -> str:
    """Why a new actor may not take ``name``: the running one (id, state, datasets, who started it) and
    how to stop it or pick another name."""
    hex_id = actor_id(actor)
    record = actor_record(hex_id)
    try:
        served = ray.get(actor.datasets.remote(), timeout=timeout_s)
        datasets = ", ".join(f"{d} ({n} items)" for d, (n, _) in sorted(served.items()))
    except (RayActorError, GetTimeoutError):
        datasets = f"unknown: it did not answer within {timeout_s:.0f} s"
    owner = starter(record.job_id) if record.job_id else None
    kill = (f"python -c \"import ray; ray.init(address='auto', namespace='{namespace}'); "
            f"ray.kill(ray.get_actor('{name}'))\"")
    if owner is not None and owner[2]:
        pid, host, _ = owner
        how = (f"Stop it with Ctrl-C in the terminal of the process that started it (`rl4rec serve` or a flow: "
               f"pid {pid} on {host}), or with `kill -TERM {pid}` there")
    elif owner is not None:
        how = f"The process that started it (pid {owner[0]} on {owner[1]}) has exited; remove the actor with {kill}"
    else:
        how = f"Remove it with {kill}"
    return (f"a retrieval actor named {name!r} already runs in namespace {namespace!r} (actor id {hex_id}, "
            f"{record.state}, datasets: {datasets}). {how}; or pick another --actor_name.")
