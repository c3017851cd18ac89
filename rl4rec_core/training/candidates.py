"""The fused recipe's side of a training step (``fusion.base`` set): the base recommender's top-K candidates
of each user for the prompt, and the reward call's fused scorer.

The reward source (the in-process ``RetrievalService`` or its Ray client) offers, besides ``compute_rewards``:

* ``candidates(dataset_name, histories, k) -> LongTensor [B, k]``: the base's top-K items of each history,
  best first, computed from the history alone (the target never enters, so a prompt cannot leak it);
* ``compute_rewards(..., scorer="fused", gamma=...)``: ranks by ``z(base) + gamma * z(cos(text, item))``.

``fusion.reward_over_base`` (the gain over the base alone) is applied by the service, which holds the run's
fusion settings and the base's ranks; the trainer asks for the fused reward either way.

Shapes: ``B`` users, ``G`` samples each, ``N = B*G`` rows grouped per user, ``K`` candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.settings import Settings


@dataclass(frozen=True)
class StepCandidates:
    """One step's candidates: ``items [B][K]`` (indices in each user's dataset) and their ``titles [B][K]``."""

    items: list[list[int]]
    titles: list[list[str]]


def fused(settings: Settings) -> bool:
    return settings.fusion.base != "none"


def reward_call(settings: Settings, step: int) -> dict[str, Any]:
    """The reward call's keyword arguments at ``step``; with a base, the fused scorer at ``fusion.train_gamma``."""
    return dict(
        reward=settings.algorithm.reward,
        num_negatives=settings.algorithm.num_negatives,
        # negatives differ per step but are the same on a resumed run
        seed=settings.run.seed * 1_000_003 + step,
        **({"scorer": "fused", "gamma": settings.fusion.train_gamma} if fused(settings) else {}),
    )


def check_source(source) -> None:
    """A fused run needs a reward source that offers the base's candidates."""
    if not callable(getattr(source, "candidates", None)):
        raise ConfigError(f"--base needs a retrieval service with the base recommender's candidates; "
                          f"{type(source).__name__} has no candidates(dataset_name, histories, k)")


def step_candidates(source, pool, users: np.ndarray, k: int) -> StepCandidates:
    """The base's top-``k`` of each of ``users`` (pool indices), asked per dataset present, in ``users``' order."""
    items: list[list[int] | None] = [None] * len(users)
    for d, rows in pool.groups(users):
        name = pool.names[d]
        got = _ask(source, name, [pool.histories[users[i]] for i in rows], k)
        n_items = len(pool.titles[d])
        for i, row in zip(rows, got):
            if not row or min(row) < 0 or max(row) >= n_items:
                raise Rl4recError(f"the retrieval service returned candidates {row[:5]}... for {name!r}, which has "
                                  f"{n_items} items; restart it with this dataset's embeddings")
            items[i] = row
    titles = [[pool.titles[pool.dataset_of[u]][j] for j in row] for u, row in zip(users, items)]
    return StepCandidates(items, titles)  # type: ignore[arg-type]


def _ask(source, name: str, histories: list[list[int]], k: int) -> list[list[int]]:
    try:
        out = source.candidates(name, histories, k)
    except Rl4recError:
        raise
    except Exception as e:  # ray.exceptions.* and connection errors
        raise Rl4recError(f"the retrieval service failed to give the base's candidates ({type(e).__name__}: {e}); "
                          "check it with `rl4rec serve --status`, or train with --service local") from e
    rows = torch.as_tensor(out).long().cpu().tolist()
    if len(rows) != len(histories):
        raise Rl4recError(f"the retrieval service returned candidates for {len(rows)} of {len(histories)} users")
    return rows
