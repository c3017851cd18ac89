"""Retrieval: the scoring service (a plain class) and the launcher that makes it a named Ray actor."""

from rl4rec_core.retrieval.service import DEFAULT_CHUNK_SIZE, RetrievalService, RewardBatch

_ACTOR_NAMES = ("launch_retrieval_actor", "get_retrieval_actor", "find_retrieval_actor", "remove_retrieval_actor", "RetrievalClient")


def __getattr__(name):
    # the actor helpers import ray, which the plain service does not need
    if name in _ACTOR_NAMES:
        from rl4rec_core.retrieval import actor

        return getattr(actor, name)
    raise AttributeError(name)


__all__ = ["DEFAULT_CHUNK_SIZE", "RetrievalService", "RewardBatch", *_ACTOR_NAMES]
