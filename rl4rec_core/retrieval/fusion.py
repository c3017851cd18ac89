"""The fused score: a base recommender's scores and the text's cosine, each standardised over the catalogue.

    fused(u, i) = z_u(base)_i + gamma * z_u(cos(text_u, e_i)) (+ bias_i)

``z_u`` standardises row ``u`` over the items the user may still be shown: the items of the user's history
are left out of the mean and the standard deviation (they are masked from every ranking, so their scores
must not move the scale of the others), and a row with no spread gets std 1 (then ``z`` is 0 everywhere
instead of NaN). Standardising is what makes one ``gamma`` mean the same for SASRec's logits and for cosines
in [-1, 1]. The z-scores of masked items are computed with the same mean and std (finite, so a target that
is also in the history still gets a score); masking them is the caller's step (``mask_history``).

``gamma = 0`` is the base alone, exactly: the text's term is not added at all (no ``0 * x`` rounding, no
``0 * inf``). Pure torch, ``[B, N]`` rows: the base's scores are a full matrix anyway, and the standardising
needs the whole row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rl4rec_core.errors import ConfigError


def check_gamma(gamma, name: str = "gamma") -> float:
    """``gamma`` as a float >= 0; a one-line ``ConfigError`` otherwise."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0 or gamma == float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0 (the text's weight in the fused score), got {gamma!r}; "
                          f"e.g. {name}=0.5, or 0 for the base recommender alone")
    return float(gamma)


def history_mask(histories: Sequence[Sequence[int]] | None, num_items: int, device=None,
                 targets: torch.Tensor | None = None) -> torch.Tensor:
    """Bool ``[B, N]``: True at each row's history items; with ``targets`` ``[B]`` a row's target is never True
    (the metrics' rule: the target is ranked even when it is in the history)."""
    b = len(histories) if histories is not None else (len(targets) if targets is not None else 0)
    mask = torch.zeros(b, num_items, dtype=torch.bool, device=device)
    if histories is None:
        return mask
    lengths = torch.tensor([len(h) for h in histories], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(len(histories)), lengths)
    cols = torch.tensor([int(i) for h in histories for i in h], dtype=torch.long)
    if len(cols):
        mask[rows.to(mask.device), cols.to(mask.device)] = True
    if targets is not None:
        t = targets.to(mask.device)
        mask[torch.arange(b, device=mask.device), t] = False
    return mask


def zscore(scores: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise ``(x - mean) / std`` of float ``[B, N]``; ``exclude`` (bool ``[B, N]``) entries are left out of the
    mean and std (population std, ``correction=0``), std 0 (or fewer than two items left) -> 1."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, N], got shape {tuple(scores.shape)}")
    x = scores.float()
    if exclude is None:
        mean = x.mean(dim=1, keepdim=True)
        std = x.std(dim=1, keepdim=True, correction=0)
    else:
        if exclude.shape != x.shape:
            raise ValueError(f"exclude mask {tuple(exclude.shape)} does not match scores {tuple(x.shape)}")
        keep = (~exclude).to(x.dtype)
        count = keep.sum(dim=1, keepdim=True).clamp_min(1)
        mean = (x * keep).sum(dim=1, keepdim=True) / count
        std = (((x - mean) * keep) ** 2).sum(dim=1, keepdim=True).div(count).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (x - mean) / std


def fused_scores(base: torch.Tensor, cos: torch.Tensor, gamma: float, bias: torch.Tensor | None = None,
                 exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``z(base) + gamma * z(cos) (+ bias)``: float32 ``[B, N]``, nothing masked (see ``mask_history``).

    Args:
        base: the base recommender's scores ``[B, N]`` (finite).
        cos: the text's cosine to every item ``[B, N]``.
        gamma: the text's weight, >= 0; 0 returns ``z(base) (+ bias)`` exactly.
        bias: optional per-item ``[N]`` (the prior ``beta * log1p(count)``) added to every row.
        exclude: bool ``[B, N]``, the items left out of each row's mean and std (the history).
    """
    gamma = check_gamma(gamma)
    if base.shape != cos.shape:
        raise ValueError(f"base scores {tuple(base.shape)} and text cosines {tuple(cos.shape)} differ in shape")
    out = zscore(base, exclude)
    if gamma != 0:
        out = out + gamma * zscore(cos, exclude)
    if bias is not None:
        out = out + bias.to(out.device, out.dtype)
    return out


def mask_history(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``scores`` with the ``mask`` entries set to ``-inf`` (in place; returned for chaining)."""
    return scores.masked_fill_(mask, float("-inf"))


def stable_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` per row, ties broken by the smaller item index (``topk`` does not promise an order among
    equals, and the candidates in a prompt must not change from one call to the next)."""
    s, idx = torch.sort(scores, dim=1, descending=True, stable=True)
    return idx[:, :k], s[:, :k]
