"""Tasks that start (or attach to) the retrieval actor and remove it when the flow is done with it."""

from __future__ import annotations

from typing import TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE

from rl4rec_core.settings import FusionSettings, RetrievalSettings


class ServiceRef(TypedDict):
    """What later tasks need to find the actor; ``created`` says whether this flow owns it, and
    ``actor_id`` which actor that is (the name may pass to another actor when this one dies)."""

    name: str
    namespace: str
    created: bool
    actor_id: str


@task(name="start_retrieval_service", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def start_retrieval_service(datasets: list[str], retrieval: RetrievalSettings, num_gpus: float,
                            fusion: FusionSettings | None = None) -> ServiceRef:
    """Attach to a running actor of ``retrieval`` that serves ``datasets`` (e.g. ``rl4rec serve``) or launch
    one; several datasets (a run on several) are served by the one actor.

    The actor is detached so it outlives this task's worker; the flow removes it at its end when it
    created it (``created=True``), and only that actor (``actor_id``). It reserves ``retrieval.actor_cpus``
    (none by default, so it never starves the training task on 2 cores). ``fusion``: the base recommender
    it fuses with the text (``scorer="fused"``); an actor already running keeps the fusion it started with.
    """
    import ray

    from rl4rec_core.retrieval import find_retrieval_actor, launch_retrieval_actor
    from rl4rec_core.retrieval.owner import actor_id, actor_record

    name, namespace = retrieval.actor_name, retrieval.namespace
    before = find_retrieval_actor(name, namespace)
    actor = launch_retrieval_actor(retrieval, list(datasets), fusion=fusion, num_gpus=num_gpus, detached=True,
                                   get_if_exists=True)
    own = actor_id(actor)
    # a new actor, started by this flow's Ray job (not by a `serve` that took the name meanwhile)
    created = (before is None or actor_id(before) != own) and (
        actor_record(own).job_id == ray.get_runtime_context().get_job_id()
    )
    return ServiceRef(name=name, namespace=namespace, created=created, actor_id=own)


def stop_retrieval_service(ref: ServiceRef | None) -> bool:
    """Remove the actor if this flow created it and it still holds the name; an actor someone else
    started under the name since is left running (plain function: called from the flow's ``finally``)."""
    if not ref or not ref.get("created"):
        return False
    import ray

    if not ray.is_initialized():
        return False
    from rl4rec_core.retrieval import remove_retrieval_actor

    return remove_retrieval_actor(ref["name"], ref["namespace"], owned_id=ref["actor_id"])


def service_client(ref: ServiceRef):
    from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor

    return RetrievalClient(get_retrieval_actor(ref["name"], ref["namespace"]), name=ref["name"], namespace=ref["namespace"])
