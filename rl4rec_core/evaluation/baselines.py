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
  (``cos + beta * log(1 + training count)``, settings from ``rl4rec tune-retrieval``).
* sasrec — a self-attentive sequential model trained in-house (:mod:`rl4rec_core.evaluation.sasrec`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.settings import DEFAULT_EMB_MODEL

BASELINES = ("popularity", "echo", "echo+prior", "sasrec")


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
    def from_dataset(cls, dataset, emb_model: str = DEFAULT_EMB_MODEL, emb_type: str = "item") -> EchoBaseline:
        from rl4rec_core.embeddings.files import load_item_embeddings

        emb, _ = load_item_embeddings(dataset.name, emb_type, emb_model, expect_items=dataset.num_items)
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

    ``beta``, ``m`` and the training counts come from the tuned retrieval settings, so this is exactly
    the scorer the retrieval service applies, with the user's recent items as the query.
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
    def from_dataset(cls, dataset, emb_model: str = DEFAULT_EMB_MODEL, emb_type: str = "item") -> EchoPriorBaseline:
        from rl4rec_core.embeddings.files import load_item_embeddings
        from rl4rec_core.retrieval.hybrid import load_tuned

        tuned = load_tuned(dataset.name, emb_type, emb_model, num_items=dataset.num_items)
        emb, _ = load_item_embeddings(dataset.name, emb_type, emb_model, expect_items=dataset.num_items)
        return cls(emb, tuned)

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[b, N]``; an empty history scores by the prior alone."""
        from rl4rec_core.retrieval.hybrid import history_mean

        q = torch.nn.functional.normalize(history_mean(self.emb, histories, self.settings.history_m), dim=1)
        return q @ self.emb.T + self.bias


def make_baseline(name: str, dataset, emb_model: str = DEFAULT_EMB_MODEL, emb_type: str = "item") -> Scorer:
    """Build a baseline scorer by name (one of ``BASELINES``)."""
    if name == "popularity":
        return PopularityBaseline.from_dataset(dataset)
    if name == "echo":
        return EchoBaseline.from_dataset(dataset, emb_model, emb_type)
    if name == "echo+prior":
        return EchoPriorBaseline.from_dataset(dataset, emb_model, emb_type)
    if name == "sasrec":
        from rl4rec_core.evaluation.sasrec import SASRecBaseline

        return SASRecBaseline.from_dataset(dataset, progress=True)
    raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)} (or 'all')")


def baseline_scorer(scorer: Scorer) -> str:
    """What a baseline's figures were scored with, for the results tables."""
    settings = getattr(scorer, "settings", None)
    if settings is not None:
        return settings.describe()
    return {"echo": "cosine", "popularity": "counts", "sasrec": "sasrec"}.get(getattr(scorer, "name", ""), "-")


def popularity_scores(dataset, split) -> torch.Tensor:
    """``[B, N]`` popularity scores for every user of ``split``."""
    return PopularityBaseline.from_dataset(dataset).score(split.histories)


def echo_scores(dataset, split, item_embeddings: torch.Tensor | None = None, emb_model: str = DEFAULT_EMB_MODEL) -> torch.Tensor:
    """``[B, N]`` echo scores for every user of ``split`` (loads the item embeddings unless given)."""
    scorer = EchoBaseline(item_embeddings) if item_embeddings is not None else EchoBaseline.from_dataset(dataset, emb_model)
    return scorer.score(split.histories)
