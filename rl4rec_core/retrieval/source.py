"""Pick where training and evaluation get rewards: a running Ray ``RetrievalService`` actor or an
in-process ``RetrievalService`` (what the original's "terminal 1" service does, without the terminal)."""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

from rl4rec_core.dataset_list import parse_names
from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.settings import DEFAULT_REWARD, SERVICE_MODES, FusionSettings, RetrievalSettings

log = logging.getLogger(__name__)


class RewardSource(Protocol):
    """Anything with the retrieval service's ``compute_rewards`` (plain class or Ray client)."""

    def compute_rewards(
        self,
        texts: list[str],
        dataset_name: str,
        targets: list[int],
        histories: list[list[int]] | None = None,
        reward: str = DEFAULT_REWARD,
        num_negatives: int = 0,
        seed: int | None = None,
    ) -> Any: ...



def check_mode(mode: str) -> str:
    if mode not in SERVICE_MODES:
        raise ConfigError(f"unknown --service {mode!r}; use one of {', '.join(SERVICE_MODES)}")
    return mode


def connect_reward_source(
    dataset_name: str, retrieval: RetrievalSettings, mode: str = "auto", address: str | None = None,
    device: str = "cpu", fusion: FusionSettings | None = None,
) -> tuple[object, str]:
    """``(reward source, one-line description)`` for ``dataset_name`` (one name, or several comma-separated:
    one service holds them all): the one service selector.

    mode: ``ray`` attaches to the named actor (error if absent), ``local`` builds the service in this
        process, ``auto`` attaches when a Ray cluster address is known (``address`` or ``RAY_ADDRESS``)
        and the actor exists there, else builds it locally.
    fusion: the base recommender the in-process service fuses with the text (``scorer="fused"``); an attached
        actor has the fusion it was started with.
    """
    check_mode(mode)
    address = address or os.environ.get("RAY_ADDRESS")
    r = retrieval
    names = parse_names(dataset_name)
    if mode == "ray" or (mode == "auto" and address):
        client = _attach(r, mode, address)
        if client is not None:
            return client, f"Reward source: Ray actor {r.actor_name!r} (namespace {r.namespace!r}) at {address or 'local Ray'}"
        if mode == "ray":
            raise Rl4recError(
                f"RetrievalService not found: no actor {r.actor_name!r} in namespace {r.namespace!r} "
                f"at {address or 'a local Ray'}; start it first with `rl4rec serve --datasets {' '.join(names)}` "
                f"(check with `rl4rec serve --status --namespace {r.namespace}`) or use --service local"
            )
        log.info("no %r actor at %s; building the retrieval service in-process", r.actor_name, address)
    from rl4rec_core.retrieval import RetrievalService

    service = RetrievalService(r, names, device=device, fusion=fusion)
    return service, (
        f"Reward source: in-process RetrievalService ({r.emb_model_name}, emb_type {r.emb_type!r}, "
        + ", ".join(f"dataset {n!r}, scorer {service.scorer(n)}" for n in names) + ")"
    )


def _attach(r: RetrievalSettings, mode: str, address: str | None):
    """A ``RetrievalClient`` for the named actor, or ``None`` when it does not exist."""
    import ray

    from rl4rec_core.ray_access import init_ray
    from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor

    if not ray.is_initialized():
        try:
            init_ray(address or "auto", namespace=r.namespace, log_to_driver=False)
        except ConnectionError as e:
            if mode == "ray":
                raise Rl4recError(
                    f"cannot reach a Ray cluster at {address or 'auto'} ({e}); start one with `ray start --head` "
                    f"and the service with `rl4rec serve`, or use --service local"
                ) from e
            return None
    try:
        actor = get_retrieval_actor(r.actor_name, r.namespace)
    except (ValueError, Rl4recError):
        return None
    return RetrievalClient(actor)
