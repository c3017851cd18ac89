"""Full-ranking evaluation of score matrices or scorers, plus table and JSON output.

Users are processed in batches so that a big catalogue (tens of thousands of items and users) never
needs the whole ``[users, items]`` matrix (and its masked copy) in memory at once.

Extension point: policies are evaluated by ``rl4rec_core.evaluation.policy_eval.evaluate_policy`` (its own
module), which returns the same metric dict as :func:`evaluate_scores`, so its rows drop into
:func:`format_table` and :func:`write_metrics` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core import metrics
from rl4rec_core.io import write_json


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k <= 0 for k in ks):
        raise ConfigError(f"--ks must be positive integers, got {list(ks)}")
    return tuple(sorted(set(ks)))


def split_ranks(scores, split, batch_size: int = 1024) -> torch.Tensor:
    """1-based rank of each user's target: long ``[B]``, on the CPU.

    Args:
        scores: float ``[B, N]`` tensor, or a scorer with ``score(histories) -> [b, N]``.
        split: has ``histories`` (``B`` lists) and ``targets`` (long ``[B]``).
        batch_size: users ranked at once (bounds memory at ``~2 * batch_size * N`` floats).
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    targets = torch.as_tensor(split.targets, dtype=torch.long)
    histories = split.histories
    n_users = len(targets)
    if len(histories) != n_users:
        raise DataError(f"split has {len(histories)} histories but {n_users} targets")
    if n_users == 0:
        raise DataError("the split has no users to evaluate; check the prepared dataset")
    is_matrix = isinstance(scores, torch.Tensor)
    if is_matrix and (scores.dim() != 2 or scores.shape[0] != n_users):
        raise DataError(f"scores must be [users={n_users}, items], got {tuple(scores.shape)}")
    out = []
    for start in range(0, n_users, batch_size):
        end = min(start + batch_size, n_users)
        hist = histories[start:end]
        block = scores[start:end] if is_matrix else scores.score(hist)
        if torch.isnan(block).any():
            raise DataError(f"scores for users {start}..{end - 1} contain NaN; fix the scorer that produced them")
        # on the CPU whatever device the scorer used: callers index and concatenate them with CPU tensors
        out.append(metrics.target_ranks(block.float(), targets[start:end], hist).cpu())
    return torch.cat(out)


def evaluate_scores(scores, split, ks: Sequence[int] = metrics.DEFAULT_KS, batch_size: int = 1024) -> dict[str, float]:
    """Mean Hit@k / NDCG@k / MRR over the split's users, history masked (target never masked).

    ``scores`` is a ``[B, N]`` tensor or a scorer (see :func:`split_ranks`). The dict has the keys of
    ``metrics.summarize`` plus ``users`` (how many were evaluated).
    """
    ranks = split_ranks(scores, split, batch_size=batch_size)
    out: dict[str, float] = metrics.summarize(ranks, _check_ks(ks))
    out["users"] = int(len(ranks))
    return out


def metric_columns(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Column order: hit@k then ndcg@k by increasing k, then mrr, then anything else."""
    names: list[str] = []
    for row in rows.values():
        for key in row:
            if key not in names:
                names.append(key)

    def order(name: str):
        kind, _, k = name.partition("@")
        if k.isdigit():
            return (0, int(k), 0 if kind == "hit" else 1, name)
        return (1 if name == "mrr" else 3 if name == "users" else 4 if name == "scorer" else 2, 0, 0, name)

    return sorted(names, key=order)


def format_table(rows: Mapping[str, Mapping[str, float]], digits: int = 4) -> str:
    """An aligned plain-text table: one row per method, one column per metric."""
    if not rows:
        return "(no results)"
    cols = metric_columns(rows)
    header = ["method", *cols]
    body = []
    for name, row in rows.items():
        cells = [name]
        for c in cols:
            v = row.get(c)
            if v is None:
                cells.append("-")
            elif isinstance(v, str):  # e.g. the scorer that produced the row
                cells.append(v)
            elif c == "users" or isinstance(v, int):
                cells.append(str(int(v)))
            else:
                cells.append(f"{float(v):.{digits}f}")
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in body)])


def write_metrics(path: str | Path, rows: Mapping[str, Mapping[str, float]], **context: Any) -> Path:
    """Write ``{"results": rows, **context, "created": ...}`` as JSON, atomically."""
    path = Path(path)
    payload = {
        **context,
        "results": {name: dict(row) for name, row in rows.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(path, payload)
    return path
