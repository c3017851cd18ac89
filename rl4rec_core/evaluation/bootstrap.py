"""Paired comparisons of recommenders evaluated on the same users: differences with bootstrap intervals.

Input is what every evaluation here produces: the 1-based rank of each user's target, per method,
in the same user order. A difference whose 95% interval excludes 0 is unlikely to be resampling noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError

COMPARED_METRICS = ("ndcg@10", "hit@10", "mrr")


def _per_user(ranks: torch.Tensor, metric: str) -> torch.Tensor:
    _, _, k = metric.partition("@")
    values = metrics.per_user_metrics(ranks, (int(k),) if k.isdigit() else (10,))
    if metric not in values:
        raise ConfigError(f"cannot compare on {metric!r}; use ndcg@k, hit@k or mrr")
    return values[metric]


def paired_intervals(
    ranks: Mapping[str, Sequence[int] | torch.Tensor], pairs: Sequence[tuple[str, str]],
    compared: Sequence[str] = COMPARED_METRICS, n: int = 1000, seed: int = 0, confidence: float = 0.95,
) -> list[dict]:
    """One row per ``(a, b)`` pair and metric: ``{"a", "b", "metric", "diff", "lo", "hi", "users"}``.

    ``diff`` is the mean over users of ``metric(a) - metric(b)``; ``[lo, hi]`` its ``confidence`` percentile
    bootstrap interval (users resampled with replacement ``n`` times, seeded); the evaluation settings'
    ``n_bootstrap`` and ``confidence`` in the commands and flows.
    """
    from rl4rec_core.evaluation.policy_eval import paired_bootstrap

    rows = []
    for a, b in pairs:
        missing = [name for name in (a, b) if name not in ranks]
        if missing:
            raise ConfigError(f"no per-user ranks for {missing}; evaluate them on the same users first")
        ra, rb = torch.as_tensor(ranks[a]).long(), torch.as_tensor(ranks[b]).long()
        if ra.shape != rb.shape:
            raise ConfigError(f"{a!r} and {b!r} were evaluated on different users ({len(ra)} vs {len(rb)})")
        for metric in compared:
            diff, lo, hi = paired_bootstrap(_per_user(ra, metric), _per_user(rb, metric), n=n, seed=seed,
                                            confidence=confidence)
            rows.append({"a": a, "b": b, "metric": metric, "diff": diff, "lo": lo, "hi": hi, "users": int(len(ra))})
    return rows


def format_intervals(rows: Sequence[Mapping]) -> str:
    """``a - b  metric  +0.0123 [+0.0040, +0.0210]  above 0`` lines, aligned."""
    if not rows:
        return "(no comparisons)"
    width = max(len(f"{r['a']} - {r['b']}") for r in rows)
    lines = []
    for r in rows:
        verdict = "above 0" if r["lo"] > 0 else "below 0" if r["hi"] < 0 else "includes 0"
        lines.append(f"{r['a'] + ' - ' + r['b']:<{width}}  {r['metric']:<8} {r['diff']:+.4f} "
                     f"[{r['lo']:+.4f}, {r['hi']:+.4f}]  {verdict}")
    return "\n".join(lines)
