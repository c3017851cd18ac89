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
    """Apply :data:`RULE` to per-user 1-based target ranks ``[U]`` of both policies (same users, same order)."""
    import torch

    from rl4rec_core.evaluation.metrics import ndcg_at_k
    from rl4rec_core.evaluation.policy_eval import paired_bootstrap

    rule = RULE.format(conf=confidence, k=k)
    ch = ndcg_at_k(torch.as_tensor(list(challenger_ranks), dtype=torch.long), k).double()
    if champion_ranks is None:
        return PromotionDecision(True, "first model: no champion yet", rule, len(ch), float(ch.mean()))
    cp = ndcg_at_k(torch.as_tensor(list(champion_ranks), dtype=torch.long), k).double()
    mean, lo, hi = paired_bootstrap(ch, cp, n=n_bootstrap, seed=seed, confidence=confidence)
    better = lo > 0
    reason = (
        f"challenger better: mean diff {mean:+.4f}, {confidence:.0%} CI [{lo:+.4f}, {hi:+.4f}] above 0"
        if better
        else f"champion kept: mean diff {mean:+.4f}, {confidence:.0%} CI [{lo:+.4f}, {hi:+.4f}] does not exclude <= 0"
    )
    return PromotionDecision(better, reason, rule, len(ch), float(ch.mean()), float(cp.mean()), mean, lo, hi)
