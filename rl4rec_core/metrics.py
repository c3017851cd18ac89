"""Full-ranking metrics, vectorised in torch.

Conventions used everywhere in rl4rec:

* ``scores``: float ``[B, N]`` — one row per user, one column per item index.
* ``targets``: long ``[B]`` — the item index each user really consumed next.
* ``histories``: per-user lists of item indices the user has already seen. They are masked out
  (scored ``-inf``) before ranking, except the target itself, which is never masked.
* ranks are 1-based and **pessimistic on ties**: every other item scoring ``>=`` the target is
  ranked ahead of it, so a model cannot gain by giving many items the same score.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_KS = (5, 10, 20)


def history_index(
    histories: Sequence[Sequence[int]], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten per-user histories into ``(rows [M], cols [M])`` on ``device``, for fancy indexing.

    Built where the scores are: CPU indices into a CUDA matrix cost a blocking copy per call.
    """
    lengths = torch.tensor([len(h) for h in histories], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(len(histories)), lengths)
    cols = torch.tensor([i for h in histories for i in h], dtype=torch.long)
    return rows.to(device), cols.to(device)


def mask_history(
    scores: torch.Tensor, histories: Sequence[Sequence[int]] | None, targets: torch.Tensor | None = None
) -> torch.Tensor:
    """Return a copy of ``scores [B, N]`` with each user's history set to ``-inf``.

    The target column keeps its original score even when the target also appears in the history.
    """
    if histories is None:
        return scores
    if len(histories) != scores.shape[0]:
        raise ValueError(f"got {len(histories)} histories for {scores.shape[0]} score rows")
    out = scores.clone()
    rows, cols = history_index(histories, scores.device)
    if len(cols):
        out[rows, cols] = float("-inf")
    if targets is not None:
        targets = torch.as_tensor(targets, dtype=torch.long, device=scores.device)
        ar = torch.arange(scores.shape[0], device=scores.device)
        out[ar, targets] = scores[ar, targets]
    return out


def target_ranks(
    scores: torch.Tensor, targets: torch.Tensor, histories: Sequence[Sequence[int]] | None = None
) -> torch.Tensor:
    """1-based rank of each target among all items: long ``[B]``.

    Args:
        scores: ``[B, N]`` float scores (higher is better).
        targets: ``[B]`` item indices.
        histories: optional per-user item indices to mask out (the target is never masked).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, N], got shape {tuple(scores.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.long, device=scores.device)
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"targets must be [B]={scores.shape[0]}, got shape {tuple(targets.shape)}")
    if len(targets) and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"target index out of range [0, {scores.shape[1]})")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    masked = mask_history(scores, histories, targets)
    target_scores = masked.gather(1, targets[:, None])
    # counts the target itself, which makes the rank 1-based
    return (masked >= target_scores).sum(dim=1)


def hit_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float: 1 if the target is in the top k."""
    _check_k(k)
    return (ranks <= k).float()


def ndcg_at_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float: ``1 / log2(rank + 1)`` inside the top k, else 0 (one relevant item, so IDCG = 1)."""
    _check_k(k)
    gains = 1.0 / torch.log2(ranks.double() + 1.0)
    return torch.where(ranks <= k, gains, torch.zeros_like(gains)).float()


def reciprocal_rank(ranks: torch.Tensor) -> torch.Tensor:
    """``[B]`` float: ``1 / rank`` (averaged over users this is MRR)."""
    return 1.0 / ranks.float()


def per_user_metrics(ranks: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, torch.Tensor]:
    """Per-user metric vectors ``{"hit@5": [B], "ndcg@5": [B], ..., "mrr": [B]}`` (for bootstrap tests)."""
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        out[f"hit@{k}"] = hit_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
    out["mrr"] = reciprocal_rank(ranks)
    return out


def summarize(ranks: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean of each metric over users."""
    if len(ranks) == 0:
        raise ValueError("no users to evaluate")
    return {name: float(v.mean()) for name, v in per_user_metrics(ranks, ks).items()}


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
