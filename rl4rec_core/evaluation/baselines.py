"""Non-learned reference recommenders that every trained policy must beat.

A baseline is a *scorer*: ``score(histories) -> FloatTensor [b, N]`` for any slice of users, so
evaluation can walk over users in batches and never hold a full ``[users, items]`` matrix of a big
catalogue. ``*_scores(dataset, split)`` return the whole ``[B, N]`` matrix for small data.

* popularity — how many training histories contain each item (``Dataset.train_histories()``, so
  validation and test targets never leak into the counts).
* echo — "more like the last thing you watched": cosine between the last history item's
  precomputed embedding and every item's embedding.
* echo+prior — the strongest recommender here that uses no LLM and the same retriever: the mean
  embedding of the last ``m`` history items as the query, through the tuned hybrid scorer
  (``cos + beta * log(1 + training count)``, settings from ``rl4rec tune-retrieval``, or the retrieval
  settings' ``beta`` and ``history_m``).

:func:`rank_baselines` ranks the held-out items of chosen users with them: what ``rl4rec evaluate``, the
flows' evaluation task and ``rl4rec ab`` all call.
* sasrec — the self-attentive sequential model of :mod:`rl4rec_core.recommenders`, trained once per dataset
  (``rl4rec sasrec``) and loaded from its stored file (trained here first when there is none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Protocol, runtime_checkable

import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.settings import BASELINES, RetrievalSettings


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores all items for a batch of users: ``histories [b]`` -> ``[b, N]`` float."""

    num_items: int

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor: ...


class PopularityBaseline:
    """Score of item i = number of training histories that contain it (same for every user)."""

    name = "popularity"

    def __init__(self, train_histories: Sequence[Sequence[int]], num_items: int):
        if num_items <= 0:
            raise DataError("popularity needs at least one item")
        flat = torch.tensor([i for h in train_histories for i in h], dtype=torch.long)
        if len(flat) and (flat.min() < 0 or flat.max() >= num_items):
            raise DataError(f"training histories reference item indices outside [0, {num_items})")
        self.num_items = num_items
        self.counts = torch.bincount(flat, minlength=num_items).float()  # [N]

    @classmethod
    def from_dataset(cls, dataset) -> PopularityBaseline:
        return cls(dataset.train_histories(), dataset.num_items)

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[b, N]``: the count vector repeated for each user (a view, no copy)."""
        return self.counts.expand(len(histories), self.num_items)


class EchoBaseline:
    """Score of item i = cosine(embedding of the user's last history item, embedding of item i).

    Users with an empty history get all-zero scores (every item ties, so the pessimistic rank is N).
    """

    name = "echo"

    def __init__(self, item_embeddings: torch.Tensor):
        """``item_embeddings``: float ``[N, dim]``; rows are normalised here, so any scale works."""
        if item_embeddings.dim() != 2 or item_embeddings.shape[0] == 0:
            raise DataError(f"item embeddings must be a non-empty [N, dim] matrix, got {tuple(item_embeddings.shape)}")
        self.emb = torch.nn.functional.normalize(item_embeddings.float(), dim=1)
        self.num_items = int(item_embeddings.shape[0])

    @classmethod
    def from_dataset(cls, dataset, retrieval: RetrievalSettings) -> EchoBaseline:
        from rl4rec_core.embeddings.files import load_item_embeddings

        emb, _ = load_item_embeddings(dataset.name, retrieval.emb_type, retrieval.emb_model_name,
                                      expect_items=dataset.num_items)
        return cls(emb)

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        last = torch.tensor([h[-1] if len(h) else -1 for h in histories], dtype=torch.long)
        has = last >= 0
        out = torch.zeros(len(histories), self.num_items)
        if has.any():
            out[has] = self.emb[last[has]] @ self.emb.T  # [b', dim] @ [dim, N]
        return out


class EchoPriorBaseline:
    """Score of item i = cos(mean of the last ``m`` history embeddings, e_i) + beta * log(1 + count_i).

    ``beta``, ``m`` and the training counts come from the tuned retrieval settings (with the retrieval
    settings' overrides), so this is exactly the scorer the retrieval service applies, with the user's
    recent items as the query.
    """

    name = "echo+prior"

    def __init__(self, item_embeddings: torch.Tensor, tuned):
        self.emb = torch.nn.functional.normalize(item_embeddings.float(), dim=1)
        self.num_items = int(item_embeddings.shape[0])
        if len(tuned.prior_counts) != self.num_items:
            raise DataError(f"retrieval settings hold {len(tuned.prior_counts)} prior counts for {self.num_items} items")
        # the query is the recent items alone, so the text fusion weight does not apply
        self.settings = dataclasses.replace(tuned.settings, alpha=0.0)
        self.bias = tuned.settings.beta * tuned.prior()  # [N]

    @classmethod
    def from_dataset(cls, dataset, retrieval: RetrievalSettings) -> EchoPriorBaseline:
        from rl4rec_core.embeddings.files import load_item_embeddings
        from rl4rec_core.retrieval.hybrid import resolve_tuned, tune_command

        r = retrieval
        tuned = resolve_tuned(dataset.name, dataclasses.replace(r, scorer="hybrid" if r.scorer == "cosine" else r.scorer),
                              dataset.num_items)
        if tuned is None:
            raise MissingArtifactError(
                f"echo+prior ranks with the tuned hybrid scorer, and {dataset.name!r} has none; tune it first "
                f"(`{tune_command(dataset.name, r.emb_type, r.emb_model_name)}`) or give --beta and --history_m")
        emb, _ = load_item_embeddings(dataset.name, r.emb_type, r.emb_model_name, expect_items=dataset.num_items)
        return cls(emb, tuned)

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[b, N]``; an empty history scores by the prior alone."""
        from rl4rec_core.retrieval.hybrid import history_mean

        q = torch.nn.functional.normalize(history_mean(self.emb, histories, self.settings.history_m), dim=1)
        return q @ self.emb.T + self.bias


def _sasrec(dataset, retrieval: RetrievalSettings) -> Scorer:
    """The stored SASRec of ``dataset`` (``rl4rec sasrec``), whatever settings it was trained with, as long
    as it is for this data; trained with the default settings first when there is none (or a stale one)."""
    from rl4rec_core.errors import Rl4recError
    from rl4rec_core.recommenders import ensure_sasrec, load_base
    from rl4rec_core.settings import SASRecSettings

    try:
        return load_base("sasrec", dataset)
    except Rl4recError:
        ensure_sasrec(dataset, SASRecSettings(), progress=True)
        return load_base("sasrec", dataset)


# the builders by name: the names are settings.BASELINES (tests/evaluation/test_baselines.py checks they agree)
BUILDERS = {"popularity": lambda dataset, retrieval: PopularityBaseline.from_dataset(dataset),
            "echo": EchoBaseline.from_dataset, "echo+prior": EchoPriorBaseline.from_dataset, "sasrec": _sasrec}


def make_baseline(name: str, dataset, retrieval: RetrievalSettings) -> Scorer:
    """Build a baseline scorer by name (one of ``settings.BASELINES``) over ``retrieval``'s item embeddings."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)} (or 'all')")
    return BUILDERS[name](dataset, retrieval)


def rank_baselines(names: Sequence[str], dataset, split: str, users, retrieval: RetrievalSettings,
                   ks: Sequence[int] = metrics.DEFAULT_KS, batch_size: int = 1024) -> dict[str, dict]:
    """``{name: {"metrics": {hit@k, ndcg@k, mrr, users, scorer}, "ranks": long [U]}}``: each baseline's rank
    of the held-out item of ``split``'s rows ``users`` (``policy_eval.select_users``: the policies' users,
    so every row pairs up with every other)."""
    from rl4rec_core.evaluation.ranking import split_ranks

    sp = dataset.split(split)
    rows = torch.as_tensor(users, dtype=torch.long)
    chosen = SimpleNamespace(histories=[sp.histories[i] for i in rows.tolist()], targets=sp.targets[rows])
    out = {}
    for name in names:
        scorer = make_baseline(name, dataset, retrieval)
        ranks = split_ranks(scorer, chosen, batch_size=batch_size)
        summary = {**metrics.summarize(ranks, tuple(sorted(set(ks)))), "users": int(len(ranks)),
                   "scorer": baseline_scorer(scorer)}
        out[name] = {"metrics": summary, "ranks": ranks}
    return out


def baseline_scorer(scorer: Scorer) -> str:
    """What a baseline's figures were scored with, for the results tables."""
    settings = getattr(scorer, "settings", None)
    if callable(getattr(settings, "describe", None)):  # the hybrid weights of echo+prior
        return settings.describe()
    return {"echo": "cosine", "popularity": "counts", "sasrec": "sasrec"}.get(getattr(scorer, "name", ""), "-")


def popularity_scores(dataset, split) -> torch.Tensor:
    """``[B, N]`` popularity scores for every user of ``split``."""
    return PopularityBaseline.from_dataset(dataset).score(split.histories)


def echo_scores(dataset, split, item_embeddings: torch.Tensor | None = None,
                retrieval: RetrievalSettings | None = None) -> torch.Tensor:
    """``[B, N]`` echo scores for every user of ``split`` (loads ``retrieval``'s item embeddings unless given)."""
    if item_embeddings is not None:
        return EchoBaseline(item_embeddings).score(split.histories)
    scorer = EchoBaseline.from_dataset(dataset, retrieval or RetrievalSettings())
    return scorer.score(split.histories)
