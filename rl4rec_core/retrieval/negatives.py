"""Sampled negatives: each user's target plus ``n`` distinct items outside their history.

Sampling is per user (B is a batch of users, not of items) and draws from the whole catalogue with
rejection, so a 1M-item catalogue costs O(n) per user rather than a permutation of N.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def sample_candidates(
    targets: torch.Tensor,
    histories: Sequence[Sequence[int]] | None,
    num_items: int,
    num_negatives: int,
    seed: int | None = None,
) -> torch.Tensor:
    """Candidate item indices ``[B, 1 + num_negatives]``: column 0 is the target, the rest negatives.

    Negatives are distinct, never the target and never in the user's history.

    Raises:
        ValueError: a user has fewer than ``num_negatives`` items left to sample from.
    """
    g = torch.Generator()
    g.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
    out = torch.empty(len(targets), 1 + num_negatives, dtype=torch.long)
    for row, target in enumerate(targets.tolist()):
        forbidden = set(histories[row]) if histories is not None else set()
        forbidden.add(target)
        available = num_items - len(forbidden)
        if num_negatives > available:
            raise ValueError(
                f"user row {row}: only {available} items are outside the history, cannot sample "
                f"num_negatives={num_negatives}; lower num_negatives or use 0 (full ranking)"
            )
        out[row, 0] = target
        out[row, 1:] = _draw(num_items, forbidden, num_negatives, available, g)
    return out


def _draw(num_items: int, forbidden: set[int], n: int, available: int, g: torch.Generator) -> torch.Tensor:
    if n == 0:
        return torch.empty(0, dtype=torch.long)
    if 2 * n >= available:
        # dense case: rejection would loop for long, so permute the allowed items directly
        allowed = torch.ones(num_items, dtype=torch.bool)
        allowed[torch.tensor(sorted(forbidden), dtype=torch.long)] = False
        pool = allowed.nonzero().squeeze(1)
        return pool[torch.randperm(len(pool), generator=g)[:n]]
    chosen: dict[int, None] = {}  # insertion-ordered set: the order of draws stays unbiased
    while len(chosen) < n:
        for i in torch.randint(num_items, (2 * (n - len(chosen)) + 8,), generator=g).tolist():
            if i not in forbidden and i not in chosen:
                chosen[i] = None
                if len(chosen) == n:
                    break
    return torch.tensor(list(chosen), dtype=torch.long)
