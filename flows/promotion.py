"""The champion/challenger rule of the retraining flow.

Rule: the challenger replaces the champion only if, on the *same* validation users, the 95% paired
bootstrap interval of the per-user difference (challenger − champion) in NDCG@10 lies above 0
(its lower bound > 0). A first model (no champion yet) is promoted. Equal policies never swap:
their difference is 0 for every user, so the lower bound is 0, not above it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

RULE = "promote if the {conf:.0%} paired-bootstrap lower bound of (challenger - champion) NDCG@{k} over users > 0, or no champion"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    rule: str
    users: int
    challenger_ndcg: float
    champion_ndcg: float | None = None
    diff_mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def decide_promotion(
    challenger_ranks: Sequence[int],
    champion_ranks: Sequence[int] | None,
    k: int = 10,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> PromotionDecision:
    """Apply :data:`RULE` to per-user 1-based target ranks ``[U]`` of both policies (same users, same order).

    The interval is the offline A/B report's (``rl4rec_core.evaluation.ab.compare_ranks``, A = challenger,
    B = champion), so ``rl4rec ab`` on the same users, seed and resamples shows the figures decided on.
    """
    from rl4rec_core.evaluation.ab import compare_ranks, per_user_values

    rule = RULE.format(conf=confidence, k=k)
    metric = f"ndcg@{k}"
    if champion_ranks is None:
        ch = per_user_values(list(challenger_ranks), (metric,))[metric]
        return PromotionDecision(True, "first model: no champion yet", rule, len(ch), float(ch.mean()))
    (d,) = compare_ranks(list(challenger_ranks), list(champion_ranks), (metric,), n=n_bootstrap, seed=seed,
                         confidence=confidence)
    better = d.lo > 0
    reason = (
        f"challenger better: mean diff {d.diff:+.4f}, {confidence:.0%} CI [{d.lo:+.4f}, {d.hi:+.4f}] above 0"
        if better
        else f"champion kept: mean diff {d.diff:+.4f}, {confidence:.0%} CI [{d.lo:+.4f}, {d.hi:+.4f}] does not exclude <= 0"
    )
    return PromotionDecision(better, reason, rule, len(challenger_ranks), d.mean_a, d.mean_b, d.diff, d.lo, d.hi)
