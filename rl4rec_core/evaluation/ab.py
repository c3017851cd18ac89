"""Offline A/B comparison of two recommenders on the same users: paired differences, bootstrap intervals,
win/tie/loss and a breakdown by user and item segment. Pure computation on per-user ranks (no I/O).

Definitions (docs/training.md, "Offline A/B report"):

* difference — per user, ``metric(A) - metric(B)``; its mean over users with a paired percentile bootstrap
  interval (users resampled with replacement, :func:`~rl4rec_core.evaluation.policy_eval.paired_bootstrap`,
  the same one the retraining flow's promotion rule uses).
* win / tie / loss — per user, on :data:`DECIDING_METRIC` (NDCG@10): A's value above, equal to or below
  B's. Two misses of the top 10 are a tie, whatever the two ranks were.
* history-length segments — the number of items in the user's history for the split, bucketed by
  :data:`HISTORY_BUCKETS`.
* head / tail — items sorted by training count (``Dataset.train_histories()``, so held-out targets never
  count), most popular first, ties by item index; the head is the shortest such prefix holding at least
  :data:`HEAD_SHARE` of all training interactions. A user is in the head segment when the target is a
  head item, else in the tail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core import metrics
from rl4rec_core.evaluation.bootstrap import COMPARED_METRICS

DECIDING_METRIC = "ndcg@10"
# inclusive (low, high) history lengths; None = no upper end. ML-100k histories run from ~19 to ~700 items
HISTORY_BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 5), (6, 20), (21, 50), (51, 100), (101, None))
HEAD_SHARE = 0.2


@dataclass(frozen=True)
class MetricDiff:
    """One metric: means of A and B, mean of the per-user difference A - B and its bootstrap interval."""

    metric: str
    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float

    @property
    def verdict(self) -> str:
        return "A better" if self.lo > 0 else "B better" if self.hi < 0 else "no clear difference"


@dataclass(frozen=True)
class Segment:
    """Users of one segment, compared on :data:`DECIDING_METRIC` (``diff`` with its interval, win/tie/loss)."""

    group: str  # "history length" or "target popularity"
    name: str
    users: int
    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    wins: int
    ties: int
    losses: int


@dataclass(frozen=True)
class UserTable:
    """Per-user inputs, all ``[U]`` in the same user order: ``user_idx``, ``history_len``, ``target``,
    ``head`` (bool: the target is a head item), ``ranks_a``/``ranks_b`` (1-based target ranks)."""

    user_idx: np.ndarray
    history_len: np.ndarray
    target: np.ndarray
    head: np.ndarray
    ranks_a: np.ndarray
    ranks_b: np.ndarray

    def rows(self) -> list[dict]:
        """One dict per user: the inputs plus each compared metric of A, of B and their difference."""
        cols: dict[str, np.ndarray] = dataclasses.asdict(self)
        va, vb = per_user_values(self.ranks_a), per_user_values(self.ranks_b)
        for m in COMPARED_METRICS:
            cols[f"{m}_a"], cols[f"{m}_b"], cols[f"{m}_diff"] = va[m], vb[m], va[m] - vb[m]
        # metric values come from float32 tensors: 6 decimals is all they hold
        cols = {k: np.round(v, 6) if v.dtype.kind == "f" else v for k, v in cols.items()}
        return [{k: v[i].item() for k, v in cols.items()} for i in range(len(self.ranks_a))]


@dataclass(frozen=True)
class ABReport:
    """The whole comparison of ``a`` against ``b``; ``to_dict`` is its JSON form (without the per-user table)."""

    a: str
    b: str
    dataset: str
    split: str
    users: int
    metrics: list[MetricDiff]
    wins: int
    ties: int
    losses: int
    segments: list[Segment]
    head_items: int
    num_items: int
    head_share: float
    n_bootstrap: int
    seed: int
    confidence: float
    decided_by: str = DECIDING_METRIC
    per_user: UserTable | None = field(default=None, repr=False)

    def metric(self, name: str) -> MetricDiff:
        return next(m for m in self.metrics if m.metric == name)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "per_user"}
        out["metrics"] = [dataclasses.asdict(m) | {"verdict": m.verdict} for m in self.metrics]
        out["segments"] = [dataclasses.asdict(s) for s in self.segments]
        return out


def per_user_values(ranks, compared: Sequence[str] = COMPARED_METRICS) -> dict[str, np.ndarray]:
    """``{metric: float64 [U]}`` for 1-based ranks ``[U]`` (``ndcg@k``, ``hit@k``, ``mrr``)."""
    r = torch.as_tensor(np.asarray(ranks), dtype=torch.long)
    ks = sorted({int(m.partition("@")[2]) for m in compared if m.partition("@")[2].isdigit()}) or [10]
    values = metrics.per_user_metrics(r, ks)
    unknown = [m for m in compared if m not in values]
    if unknown:
        raise ConfigError(f"cannot compare on {unknown}; use ndcg@k, hit@k or mrr")
    return {m: values[m].double().numpy() for m in compared}


def _interval(va: np.ndarray, vb: np.ndarray, n: int, seed: int, confidence: float) -> tuple[float, float, float]:
    from rl4rec_core.evaluation.policy_eval import paired_bootstrap

    if len(va) == 1:  # every resample of one user is that user (scipy refuses a single observation)
        d = float(va[0] - vb[0])
        return d, d, d
    return paired_bootstrap(va, vb, n=n, seed=seed, confidence=confidence)


def compare_ranks(
    ranks_a, ranks_b, compared: Sequence[str] = COMPARED_METRICS,
    n: int = 1000, seed: int = 0, confidence: float = 0.95,
) -> list[MetricDiff]:
    """One :class:`MetricDiff` per metric for per-user ranks ``[U]`` of A and B on the same users."""
    ra, rb = np.asarray(ranks_a), np.asarray(ranks_b)
    if ra.shape != rb.shape or ra.ndim != 1 or len(ra) == 0:
        raise ConfigError(f"A and B must be ranked on the same non-empty users, got {ra.shape} and {rb.shape}")
    va, vb = per_user_values(ra, compared), per_user_values(rb, compared)
    out = []
    for m in compared:
        diff, lo, hi = _interval(va[m], vb[m], n, seed, confidence)
        out.append(MetricDiff(m, float(va[m].mean()), float(vb[m].mean()), diff, lo, hi))
    return out


def win_tie_loss(values_a: np.ndarray, values_b: np.ndarray) -> tuple[int, int, int]:
    """How many users A beats, ties with and loses to (exact comparison of the per-user values)."""
    d = np.asarray(values_a, dtype=np.float64) - np.asarray(values_b, dtype=np.float64)
    return int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum())


def head_items(train_histories: Sequence[Sequence[int]], num_items: int, share: float = HEAD_SHARE) -> np.ndarray:
    """Bool ``[N]``: the most popular items that together hold at least ``share`` of training interactions.

    E.g. counts ``[5, 3, 1, 1]`` (10 interactions), share 0.2 -> item 0 alone (5 >= 2); share 0.6 -> items 0
    and 1 (5 + 3 >= 6). Ties in count are taken in item-index order; items never trained on are tail.
    """
    if not 0 < share <= 1:
        raise ConfigError(f"head share must be in (0, 1], got {share}")
    flat = np.fromiter((i for h in train_histories for i in h), dtype=np.int64)
    if len(flat) == 0:
        raise DataError("no training interactions: cannot tell head from tail items")
    counts = np.bincount(flat, minlength=num_items)
    order = np.argsort(-counts, kind="stable")
    covered = np.cumsum(counts[order])
    n_head = int(np.searchsorted(covered, share * covered[-1], side="left")) + 1
    head = np.zeros(num_items, dtype=bool)
    head[order[:n_head]] = True
    return head


def history_bucket(length: int, buckets=HISTORY_BUCKETS) -> str:
    """The bucket's name (``"6-20"``, ``"101+"``) of a history of ``length`` items."""
    for low, high in buckets:
        if length >= low and (high is None or length <= high):
            return f"{low}+" if high is None else f"{low}-{high}"
    return f"<{buckets[0][0]}"  # an empty history: below every bucket


def _segment(group: str, name: str, mask: np.ndarray, va, vb, n: int, seed: int, confidence: float) -> Segment:
    a, b = va[mask], vb[mask]
    diff, lo, hi = _interval(a, b, n, seed, confidence)
    return Segment(group, name, int(mask.sum()), float(a.mean()), float(b.mean()), diff, lo, hi, *win_tie_loss(a, b))


def segments(table: UserTable, n: int = 1000, seed: int = 0, confidence: float = 0.95) -> list[Segment]:
    """History-length buckets (in :data:`HISTORY_BUCKETS` order), then head and tail; empty ones left out."""
    va = per_user_values(table.ranks_a, (DECIDING_METRIC,))[DECIDING_METRIC]
    vb = per_user_values(table.ranks_b, (DECIDING_METRIC,))[DECIDING_METRIC]
    names = np.array([history_bucket(int(x)) for x in table.history_len])
    order = [history_bucket(0)] + [history_bucket(low) for low, _ in HISTORY_BUCKETS]
    out = [_segment("history length", name, names == name, va, vb, n, seed, confidence)
           for name in order if (names == name).any()]
    for name, mask in (("head", table.head), ("tail", ~table.head)):
        if mask.any():
            out.append(_segment("target popularity", name, mask, va, vb, n, seed, confidence))
    return out


def user_table(user_idx, histories: Sequence[Sequence[int]], targets, ranks_a, ranks_b, head: np.ndarray) -> UserTable:
    """The per-user table of users ``user_idx`` ``[U]`` with their ``histories``, ``targets`` and both systems'
    ranks (all in the same order), ``head`` being :func:`head_items`' item mask ``[N]``."""
    target = np.asarray(torch.as_tensor(targets), dtype=np.int64)
    return UserTable(
        user_idx=np.asarray(torch.as_tensor(user_idx), dtype=np.int64),
        history_len=np.array([len(h) for h in histories], dtype=np.int64), target=target,
        head=np.asarray(head, dtype=bool)[target], ranks_a=np.asarray(torch.as_tensor(ranks_a), dtype=np.int64),
        ranks_b=np.asarray(torch.as_tensor(ranks_b), dtype=np.int64),
    )


def ab_report(
    table: UserTable, head: np.ndarray, *, a: str, b: str, dataset: str, split: str,
    head_share: float = HEAD_SHARE, n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95,
) -> ABReport:
    """Everything the A/B report shows, from the per-user table and the head-item mask ``[N]`` it used."""
    if n_bootstrap < 1:
        raise ConfigError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    lengths = {len(np.asarray(v)) for v in dataclasses.asdict(table).values()}
    if len(lengths) != 1:
        raise DataError(f"the per-user columns have different lengths {sorted(lengths)}; build them on the same users")
    diffs = compare_ranks(table.ranks_a, table.ranks_b, n=n_bootstrap, seed=seed, confidence=confidence)
    va = per_user_values(table.ranks_a, (DECIDING_METRIC,))[DECIDING_METRIC]
    vb = per_user_values(table.ranks_b, (DECIDING_METRIC,))[DECIDING_METRIC]
    return ABReport(
        a=a, b=b, dataset=dataset, split=split, users=len(table.ranks_a), metrics=diffs,
        **dict(zip(("wins", "ties", "losses"), win_tie_loss(va, vb))),
        segments=segments(table, n_bootstrap, seed, confidence), head_items=int(np.sum(head)),
        num_items=len(head), head_share=head_share, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence,
        per_user=table,
    )


def report_for_users(dataset, split: str, users, ranks_a, ranks_b, *, a: str, b: str, **options) -> ABReport:
    """:func:`ab_report` for rows ``users`` ``[U]`` of ``dataset``'s ``split`` (``select_users`` order, as
    ``evaluate_policy`` ranks them), head items from the dataset's training histories."""
    sp = dataset.split(split)
    rows = torch.as_tensor(np.asarray(users), dtype=torch.long)
    head = head_items(dataset.train_histories(), dataset.num_items, options.get("head_share", HEAD_SHARE))
    table = user_table(sp.user_idx[rows], [sp.histories[i] for i in rows.tolist()], sp.targets[rows],
                       ranks_a, ranks_b, head)
    return ab_report(table, head, a=a, b=b, dataset=dataset.name, split=split, **options)
