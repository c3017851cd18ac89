"""Chunked cosine scoring over an item matrix: memory stays bounded by ``B x chunk`` however big ``N`` is.

All functions take unit-norm queries ``q [B, d]`` and unit-norm item embeddings ``items [N, d]``,
so a dot product is the cosine similarity, and an optional per-item ``bias [N]`` added to every row
(the hybrid scorer's ``beta * prior``, see :mod:`rl4rec_core.retrieval.hybrid`). History masking follows :mod:`rl4rec_core.metrics`
(the target is never masked; ties are pessimistic).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def chunks(num_items: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, num_items, chunk_size):
        yield start, min(start + chunk_size, num_items)


def history_pairs(
    histories: Sequence[Sequence[int]] | None, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten histories into ``(rows [M], cols [M])``, dropping each row's own target."""
    if histories is None:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    lengths = torch.tensor([len(h) for h in histories], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(len(histories)), lengths)
    cols = torch.tensor([int(i) for h in histories for i in h], dtype=torch.long)
    if targets is not None and len(cols):
        keep = cols != targets.cpu()[rows]  # rows/cols live on the CPU whatever the targets' device
        rows, cols = rows[keep], cols[keep]
    return rows, cols


def _mask_chunk(s: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, start: int, stop: int) -> None:
    """Set the history entries falling in ``[start, stop)`` to ``-inf`` in the chunk ``s [B, stop-start]``."""
    if len(cols):
        sel = (cols >= start) & (cols < stop)
        if sel.any():
            s[rows[sel], cols[sel] - start] = float("-inf")


def _chunk_scores(q: torch.Tensor, items: torch.Tensor, bias: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
    s = q @ items[start:stop].T  # [B, c]
    if bias is not None:
        s += bias[start:stop]
    return s


def full_scores(
    q: torch.Tensor, items: torch.Tensor, chunk_size: int, histories=None, targets=None, bias=None
) -> torch.Tensor:
    """Scores ``[B, N]`` filled chunk by chunk into one buffer (no ``[B, N]`` temporaries), history masked."""
    out = torch.empty(q.shape[0], items.shape[0], dtype=torch.float32, device=q.device)
    rows, cols = history_pairs(histories, targets)
    rows, cols = rows.to(q.device), cols.to(q.device)
    for start, stop in chunks(items.shape[0], chunk_size):
        torch.matmul(q, items[start:stop].T, out=out[:, start:stop])
    if bias is not None:
        out += bias
    if len(cols):
        out[rows, cols] = float("-inf")
    return out


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """1-based pessimistic rank of each target in already-masked ``scores [B, N]``: long ``[B]``."""
    t = scores.gather(1, targets[:, None])
    ranks = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    for start, stop in chunks(scores.shape[1], chunk_size):
        ranks += (scores[:, start:stop] >= t).sum(dim=1)
    return ranks


# |float32 dot - float32 dot| for unit vectors of a few thousand dims stays far below this; scores
# within the band around a target's score are settled exactly after the pass (see chunked_ranks)
_TIE_BAND = 1e-4


def chunked_ranks(
    q: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, chunk_size: int, histories=None, bias=None
) -> torch.Tensor:
    """Rank of each target among all items without ever holding ``[B, N]``: long ``[B]``.

    Equal to ``metrics.target_ranks`` on the full score matrix. The rank needs the target's
    score before its chunk comes up, so a first estimate ``t ~ q . items[target]`` (a different
    summation order, hence rounding) sorts items into clearly-ahead (``s > t + band``) and
    near-ties; near-ties are kept (rare: a band of 1e-4 in cosine) and compared with the target's
    score from the matmul itself once it is known, so ties are pessimistic exactly as in the
    full-matrix path.
    """
    t = (q * items[targets]).sum(dim=1, keepdim=True)  # [B, 1] estimate
    if bias is not None:
        t += bias[targets][:, None]
    exact = t.squeeze(1).clone()
    rows, cols = history_pairs(histories, targets)
    rows, cols = rows.to(q.device), cols.to(q.device)
    ar = torch.arange(q.shape[0], device=q.device)
    ahead = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    near_rows, near_vals = [], []
    for start, stop in chunks(items.shape[0], chunk_size):
        s = _chunk_scores(q, items, bias, start, stop)
        _mask_chunk(s, rows, cols, start, stop)
        own = (targets >= start) & (targets < stop)
        if own.any():
            exact[own] = s[ar[own], targets[own] - start]
            s[ar[own], targets[own] - start] = float("-inf")  # the target itself is the leading 1
        ahead += (s > t + _TIE_BAND).sum(dim=1)
        r, c = ((s >= t - _TIE_BAND) & (s <= t + _TIE_BAND)).nonzero(as_tuple=True)
        near_rows.append(r)
        near_vals.append(s[r, c])
    r, v = torch.cat(near_rows), torch.cat(near_vals)
    ahead.index_add_(0, r, (v >= exact[r]).long())
    return 1 + ahead


def chunked_top_k(
    q: torch.Tensor, items: torch.Tensor, k: int, chunk_size: int, histories=None, bias=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items per row, history masked: ``(indices [B, k] long, scores [B, k] float)``, best first."""
    rows, cols = history_pairs(histories)
    rows, cols = rows.to(q.device), cols.to(q.device)
    best_s = torch.full((q.shape[0], 0), float("-inf"), device=q.device)
    best_i = torch.empty((q.shape[0], 0), dtype=torch.long, device=q.device)
    for start, stop in chunks(items.shape[0], chunk_size):
        s = _chunk_scores(q, items, bias, start, stop)
        _mask_chunk(s, rows, cols, start, stop)
        top = s.topk(min(k, stop - start), dim=1)
        # merge the running best with this chunk's best and keep k
        cand_s = torch.cat([best_s, top.values], dim=1)
        cand_i = torch.cat([best_i, top.indices + start], dim=1)
        keep = cand_s.topk(min(k, cand_s.shape[1]), dim=1)
        best_s, best_i = keep.values, cand_i.gather(1, keep.indices)
    return best_i, best_s
