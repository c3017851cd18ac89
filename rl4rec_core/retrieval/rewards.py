"""Reward functions: how a rank (and the scores behind it) becomes the scalar a policy is trained on.

A reward function is a plain callable, in the TRL style::

    fn(*, ranks, scores, targets, num_items, **kwargs) -> FloatTensor [B]

* ``ranks``: long ``[B]``, 1-based rank of each user's target among the candidates (history masked,
  pessimistic on ties — see :mod:`rl4rec_core.metrics`).
* ``scores``: float ``[B, C]`` cosine scores of the candidates, history set to ``-inf`` (``C = N``
  for the full catalogue, ``1 + num_negatives`` with sampled negatives; column 0 is then the target).
  Rank-only functions set the attribute ``needs_scores = False``; the retrieval service then passes
  ``scores=None`` and never materialises the ``[B, N]`` matrix.
* ``targets``: long ``[B]`` item indices; ``num_items``: catalogue size ``N``.
* ``**kwargs``: everything else the caller knows (``texts``, ``histories``, ``dataset_name``,
  ``num_candidates``, ``target_columns`` (each target's column in ``scores``) and any user
  keyword), so new fields never break an old function.

Names: ``ndcg@K`` and ``hit@K`` for any K > 0, ``mrr``, ``mixed``, ``rank_pct`` (``1 - (rank-1)/(C-1)``, a dense
reward for large catalogues), ``log_rank`` (``1 - ln(rank)/ln(C)``, dense but top-heavy), ``mixed``
(``0.5 * ndcg@10 + 0.5 * mrr``:
NDCG gives the sharp top-of-list signal, MRR keeps a non-zero gradient when the target falls
outside the top 10), ``top5_diversity`` (the original guide's example: mean of the top-5 scores
plus 0.1 x their standard deviation), or a user function by dotted path ``pkg.module:function``
(or ``pkg.module.function``).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Protocol

import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core import metrics


class RewardFn(Protocol):
    def __call__(
        self, *, ranks: torch.Tensor, scores: torch.Tensor | None, targets: torch.Tensor, num_items: int, **kwargs
    ) -> torch.Tensor: ...


_REWARDS: dict[str, RewardFn] = {}
# families parametrised by a cut-off, e.g. "ndcg" -> factory(k) for "ndcg@10"
_FAMILIES: dict[str, Callable[[int], RewardFn]] = {}
_FAMILY_RE = re.compile(r"^([a-z_]+)@(\d+)$")


def register_reward(name: str, fn: RewardFn | None = None, *, needs_scores: bool = True):
    """Register ``fn`` under ``name`` (usable as a decorator). Refuses a name that is already taken."""

    def add(f: RewardFn) -> RewardFn:
        if name in _REWARDS or name in _FAMILIES:
            raise ConfigError(f"reward {name!r} is already registered; pick another name")
        if not callable(f):
            raise ConfigError(f"reward {name!r} must be callable, got {type(f).__name__}")
        f.needs_scores = needs_scores  # type: ignore[attr-defined]
        _REWARDS[name] = f
        return f

    return add(fn) if fn is not None else add


def register_reward_family(prefix: str, factory: Callable[[int], RewardFn]) -> None:
    """Register ``prefix@K`` names: ``factory(K)`` builds the function for a cut-off K."""
    if prefix in _FAMILIES or prefix in _REWARDS:
        raise ConfigError(f"reward family {prefix!r} is already registered; pick another name")
    _FAMILIES[prefix] = factory


def known_rewards() -> list[str]:
    """Every name ``resolve_reward`` accepts, with ``K`` standing for any positive cut-off."""
    return [f"{p}@K" for p in sorted(_FAMILIES)] + sorted(_REWARDS) + ["pkg.module:function"]


def resolve_reward(name: str | RewardFn) -> RewardFn:
    """Turn a reward name (or a callable, returned as is) into a reward function.

    Raises:
        ConfigError: unknown name, bad cut-off, or a dotted path that does not import to a callable;
            the message lists the known names.
    """
    if callable(name):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"reward must be a name, got {name!r}; known rewards: {', '.join(known_rewards())}")
    name = name.strip()
    if name in _REWARDS:
        return _REWARDS[name]
    m = _FAMILY_RE.match(name)
    if m and m.group(1) in _FAMILIES:
        k = int(m.group(2))
        if k <= 0:
            raise ConfigError(f"reward {name!r}: the cut-off must be a positive integer, e.g. {m.group(1)}@10")
        return _FAMILIES[m.group(1)](k)
    if ":" in name or "." in name:
        return _import_reward(name)
    raise ConfigError(f"unknown reward {name!r}; known rewards: {', '.join(known_rewards())}")


def _import_reward(path: str) -> RewardFn:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"reward {path!r} is not a dotted path; write it as pkg.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(
            f"reward {path!r}: cannot import module {module_name!r} ({e}); make it importable (installed or on "
            f"PYTHONPATH) or use a known reward: {', '.join(known_rewards())}"
        ) from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"reward {path!r}: module {module_name!r} has no function {attr!r}")
    return fn


def check_rewards(values: torch.Tensor, batch_size: int, name: str) -> torch.Tensor:
    """Validate a reward function's output and return it as float32 ``[B]`` on the CPU."""
    values = torch.as_tensor(values).cpu()  # a user function may have computed on a GPU
    if values.shape != (batch_size,):
        raise ValueError(f"reward {name!r} returned shape {tuple(values.shape)}, expected [{batch_size}]")
    values = values.float()
    if not torch.isfinite(values).all():
        raise ValueError(f"reward {name!r} returned NaN or Inf; make it finite for every row")
    return values


# ---------------------------------------------------------------------------- built-in rewards


def _rank_reward(prefix: str, metric: Callable[[torch.Tensor, int], torch.Tensor]) -> Callable[[int], RewardFn]:
    """A family ``{prefix}@k`` of rewards computed from ranks alone (so no score matrix is built)."""

    def factory(k: int) -> RewardFn:
        def reward(*, ranks, **_):
            return metric(ranks, k)

        reward.needs_scores = False  # type: ignore[attr-defined]
        reward.__name__ = f"{prefix}@{k}"
        return reward

    return factory


register_reward_family("ndcg", _rank_reward("ndcg", metrics.ndcg_at_k))
register_reward_family("hit", _rank_reward("hit", metrics.hit_at_k))


@register_reward("mrr", needs_scores=False)
def mrr(*, ranks, **_):
    """``1 / rank``."""
    return metrics.reciprocal_rank(ranks)


@register_reward("mixed", needs_scores=False)
def mixed(*, ranks, **_):
    """``0.5 * ndcg@10 + 0.5 * mrr`` (see the module docstring for why)."""
    return 0.5 * metrics.ndcg_at_k(ranks, 10) + 0.5 * metrics.reciprocal_rank(ranks)


@register_reward("rank_pct", needs_scores=False)
def rank_pct(*, ranks, num_items, num_candidates=None, **_):
    """``1 - (rank - 1) / (C - 1)`` with ``C`` candidates: 1 for the top, 0 for the bottom.

    Dense where ``ndcg@10`` and ``mrr`` are ~0 for almost every sample (a 135M policy's text rarely
    puts the target in the top 10 of 1,682 movies), so GRPO advantages within a group carry signal
    instead of noise. ``C`` is ``num_candidates`` when the caller passes it, else ``num_items``.
    """
    c = num_candidates if num_candidates is not None else num_items
    if c < 2:
        return torch.ones_like(ranks, dtype=torch.float32)
    return 1.0 - (ranks.float() - 1.0) / float(c - 1)


@register_reward("log_rank", needs_scores=False)
def log_rank(*, ranks, num_items, num_candidates=None, **_):
    """``1 - ln(rank) / ln(C)``: 1 for the top, 0 for the bottom, dense everywhere like ``rank_pct``.

    Moving the target from rank 1,000 to 100 earns as much as from 10 to 1, so the reward leans
    towards the top of the list as NDCG's log discount does, instead of paying for every rank alike.
    """
    c = num_candidates if num_candidates is not None else num_items
    if c < 2:
        return torch.ones_like(ranks, dtype=torch.float32)
    return 1.0 - torch.log(ranks.float()) / math.log(c)


@register_reward("top5_diversity", needs_scores=True)
def top5_diversity(*, scores, **_):
    """The original guide's example: mean of each row's top-5 scores + 0.1 x their (sample) std.

    Masked (``-inf``) items never enter the top 5 unless fewer than 5 candidates are left, which
    the service refuses (``num_negatives >= 4`` or a catalogue of at least 5 items is needed).
    """
    if scores is None or scores.shape[1] < 5:
        raise ValueError("top5_diversity needs at least 5 candidate scores per row; use num_negatives >= 4")
    top = scores.topk(5, dim=1).values
    return top.mean(dim=1) + 0.1 * top.std(dim=1)
