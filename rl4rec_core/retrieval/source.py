"""Pick where training and evaluation get rewards: a running Ray ``RetrievalService`` actor or an
in-process ``RetrievalService`` (what the original's "terminal 1" service does, without the terminal)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from rl4rec_core.errors import ConfigError, Rl4recError

log = logging.getLogger(__name__)

SERVICE_MODES = ("auto", "local", "ray")


@dataclass
class ServiceConfig:
    """How to reach the retrieval service.

    mode: ``ray`` attaches to the named actor (error if absent), ``local`` builds the service in this
        process, ``auto`` attaches when a Ray cluster address is known (``address`` or ``RAY_ADDRESS``)
        and the actor exists there, else builds it locally.
    """

    mode: str = "auto"
    emb_model_name: str = "all-MiniLM-L6-v2"
    emb_type: str = "item"
    actor_name: str = "RetrievalService"
    namespace: str = "rl4rec"
    address: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    scorer: str = "auto"  # in-process service: tuned hybrid when tuned (auto), required (hybrid), or cosine

    def __post_init__(self) -> None:
        if self.mode not in SERVICE_MODES:
            raise ConfigError(f"unknown --service {self.mode!r}; use one of {', '.join(SERVICE_MODES)}")
        if self.scorer not in ("auto", "hybrid", "cosine"):
            raise ConfigError(f"unknown --scorer {self.scorer!r}; use auto, hybrid or cosine")


def connect_reward_source(dataset_name: str, cfg: ServiceConfig) -> tuple[object, str]:
    """``(reward source, one-line description)`` for ``dataset_name`` according to ``cfg``."""
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if cfg.mode == "ray" or (cfg.mode == "auto" and address):
        client = _attach(cfg, address)
        if client is not None:
            return client, (
                f"Reward source: Ray actor {cfg.actor_name!r} (namespace {cfg.namespace!r}) at {address or 'local Ray'}"
            )
        if cfg.mode == "ray":
            raise Rl4recError(
                f"RetrievalService not found: no actor {cfg.actor_name!r} in namespace {cfg.namespace!r} "
                f"at {address or 'a local Ray'}; start it first with `rl4rec serve --datasets {dataset_name}` "
                f"(check with `ray list actors --namespace {cfg.namespace}`) or use --service local"
            )
        log.info("no %r actor at %s; building the retrieval service in-process", cfg.actor_name, address)
    from rl4rec_core.retrieval import RetrievalService

    service = RetrievalService(
        emb_model_name=cfg.emb_model_name, emb_type=cfg.emb_type, datasets=(dataset_name,),
        device=cfg.device, backend=cfg.backend, scorer=cfg.scorer,
    )
    return service, (
        f"Reward source: in-process RetrievalService ({cfg.emb_model_name}, emb_type {cfg.emb_type!r}, "
        f"dataset {dataset_name!r}, scorer {service.scorer(dataset_name)})"
    )


def _attach(cfg: ServiceConfig, address: str | None):
    """A ``RetrievalClient`` for the named actor, or ``None`` when it does not exist."""
    import ray

    from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor

    if not ray.is_initialized():
        try:
            ray.init(address=address or "auto", namespace=cfg.namespace, log_to_driver=False)
        except ConnectionError as e:
            if cfg.mode == "ray":
                raise Rl4recError(
                    f"cannot reach a Ray cluster at {address or 'auto'} ({e}); start one with `ray start --head` "
                    f"and the service with `rl4rec serve`, or use --service local"
                ) from e
            return None
    try:
        actor = get_retrieval_actor(cfg.actor_name, cfg.namespace)
    except (ValueError, Rl4recError):
        return None
    return RetrievalClient(actor)
