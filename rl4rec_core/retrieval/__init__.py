"""Retrieval: the scoring service (a plain class), the launcher that makes it a named Ray actor, the
reward functions, negatives, hybrid-scorer settings and tuning, and the one selector of where rewards come from."""

from rl4rec_core.retrieval.service import RetrievalService, RewardBatch

_ACTOR_NAMES = ("launch_retrieval_actor", "get_retrieval_actor", "find_retrieval_actor", "remove_retrieval_actor", "RetrievalClient")


def __getattr__(name):
    # the actor helpers import ray, which the plain service does not need
    if name in _ACTOR_NAMES:
        from rl4rec_core.retrieval import actor

        return getattr(actor, name)
    raise AttributeError(name)


__all__ = ["RetrievalService", "RewardBatch", *_ACTOR_NAMES]
