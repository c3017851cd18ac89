"""The base recommender the retrieval service fuses with the text: SASRec, or echo+prior as the fallback.

A base is anything with ``score(histories) -> FloatTensor [B, N]`` (raw, finite scores of every item for
each history; the service standardises and masks them) and ``record() -> dict`` (what decides its scores:
its name, weights, the sha256 of its checkpoint; a resumed run compares it). ``load_base_channel`` is the
one place a base is built from the ``fusion`` settings: ``echo+prior`` from the service's own item
embeddings and the hybrid scorer's tuned ``beta``/``history_m`` (``retrieval.hybrid``), ``sasrec`` through
``rl4rec_core.recommenders.load_base`` (imported only then).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval, history_mean
from rl4rec_core.settings import FusionSettings

log = logging.getLogger(__name__)


@runtime_checkable
class BaseScorer(Protocol):
    """A base recommender as a retrieval channel."""

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Float ``[B, N]``: every item's score for each history (finite; nothing masked)."""
        ...

    def record(self) -> dict[str, Any]:
        """What decides the scores, JSON-able and flat, with at least ``{"base": name}``."""
        ...


class EchoPriorBase:
    """echo+prior: cosine of the mean of the user's last ``history_m`` item embeddings to every item,
    plus ``beta * log1p(training count)`` (the baseline ``tune-retrieval`` tunes; an empty history scores
    by the prior alone).

    Args:
        item_emb: row-normalised ``[N, d]`` (the service's own matrix; not copied).
        prior_counts: training interactions per item ``[N]``.
    """

    def __init__(self, item_emb: torch.Tensor, prior_counts: Sequence[int], beta: float, history_m: int) -> None:
        weights = HybridWeights(beta=beta, history_m=history_m)  # its checks: beta >= 0, m >= 1
        if len(prior_counts) != item_emb.shape[0]:
            raise ConfigError(f"echo+prior: {len(prior_counts)} prior counts for {item_emb.shape[0]} items")
        self.item_emb, self.beta, self.history_m = item_emb, weights.beta, weights.history_m
        counts = torch.tensor([int(c) for c in prior_counts], dtype=torch.float32)
        self.prior = torch.log1p(counts).to(item_emb.device)
        self._counts_sha = hashlib.sha256(counts.numpy().tobytes()).hexdigest()

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        q = torch.nn.functional.normalize(history_mean(self.item_emb, histories, self.history_m), dim=1)
        return q @ self.item_emb.T + self.beta * self.prior

    def record(self) -> dict[str, Any]:
        return {"base": "echo+prior", "beta": self.beta, "history_m": self.history_m,
                "prior_counts_sha256": self._counts_sha}


def echo_prior_from_tuned(item_emb: torch.Tensor, tuned: TunedRetrieval) -> EchoPriorBase:
    """echo+prior with the tuned file's (or the given overrides') ``beta``, ``history_m`` and prior counts."""
    return EchoPriorBase(item_emb, tuned.prior_counts, tuned.settings.beta, tuned.settings.history_m)


def load_base_channel(fusion: FusionSettings, dataset_name: str, *, item_emb: torch.Tensor | None = None,
                      tuned: TunedRetrieval | None = None) -> BaseScorer | None:
    """The base of ``fusion.base`` for ``dataset_name``; None for ``none``.

    Args:
        item_emb: the service's row-normalised item matrix (echo+prior scores with it).
        tuned: the hybrid scorer's tuned settings (``retrieval.hybrid.resolve_tuned``): echo+prior's ``beta``,
            ``history_m`` and prior counts. Without them echo+prior takes the untuned weights and the counts of
            the prepared dataset.

    Raises:
        ConfigError: one line, when the base cannot be built (no SASRec checkpoint, the recommenders layer
            missing, no dataset for the prior), naming the fix.
    """
    if not isinstance(fusion, FusionSettings):
        raise ConfigError(f"load_base_channel takes FusionSettings, got {type(fusion).__name__}")
    if fusion.base == "none":
        return None
    if fusion.base == "echo+prior":
        if item_emb is None:
            raise ConfigError("the echo+prior base needs the service's item embeddings (item_emb)")
        return echo_prior_from_tuned(item_emb, tuned if tuned is not None else _untuned(dataset_name))
    return _load_recommender(fusion.base, dataset_name)


def _untuned(dataset_name: str) -> TunedRetrieval:
    """The untuned echo+prior weights with the prepared dataset's prior counts."""
    from rl4rec_core.retrieval.hybrid import train_counts

    dataset = _dataset(dataset_name, "echo+prior")
    log.warning("no tuned retrieval settings for %r: the echo+prior base uses the untuned weights %s; run "
                "`rl4rec tune-retrieval --dataset_name %s`", dataset_name, HybridWeights().to_dict(), dataset_name)
    return TunedRetrieval(dataset_name, HybridWeights(), train_counts(dataset.train_histories(), dataset.num_items), {})


def _dataset(dataset_name: str, base: str):
    from rl4rec_core.data import load_dataset

    try:
        return load_dataset(dataset_name)
    except MissingArtifactError:
        raise ConfigError(f"the {base} base of {dataset_name!r} needs the prepared dataset where the retrieval "
                          f"service runs; run `rl4rec prepare --dataset_name {dataset_name}` there") from None


def _load_recommender(name: str, dataset_name: str) -> BaseScorer:
    """``rl4rec_core.recommenders.load_base(name, dataset)``, with every way it can be missing as one line."""
    try:
        from rl4rec_core.recommenders import load_base
    except ImportError as e:
        raise ConfigError(f"base {name!r} needs rl4rec_core.recommenders.load_base, which cannot be imported ({e}); "
                          f"use --base echo+prior or none") from None
    dataset = _dataset(dataset_name, name)
    try:
        scorer = load_base(name, dataset)
    except (MissingArtifactError, FileNotFoundError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"base {name!r} of {dataset_name!r}: no trained checkpoint ({first}); train it first "
                          f"(`rl4rec {name} --dataset_name {dataset_name}`) or use --base echo+prior") from None
    if not callable(getattr(scorer, "score", None)) or not callable(getattr(scorer, "record", None)):
        raise ConfigError(f"rl4rec_core.recommenders.load_base({name!r}) returned {type(scorer).__name__}, "
                          f"which has no score(histories) and record()")
    return scorer


def base_candidates(fusion: FusionSettings, dataset_name: str, retrieval=None):
    """``histories -> LongTensor [B, K]``: the base's top ``fusion.num_candidates`` items of each history, history
    masked, ties to the smaller index, as the retrieval service's ``candidates`` gives them, without a service
    or a text encoder (SFT's examples; ``retrieval``: the item embeddings echo+prior reads, default settings)."""
    from rl4rec_core.retrieval import fusion as fz

    if fusion.base == "none":
        raise ConfigError("candidates need a base recommender; pass --base sasrec or --base echo+prior")
    item_emb = tuned = None
    if fusion.base == "echo+prior":
        from rl4rec_core.embeddings.files import load_item_embeddings
        from rl4rec_core.retrieval.hybrid import load_tuned, settings_path
        from rl4rec_core.settings import RetrievalSettings

        r = retrieval or RetrievalSettings()
        item_emb = torch.nn.functional.normalize(load_item_embeddings(dataset_name, r.emb_type, r.emb_model_name)[0], dim=1)
        if settings_path(dataset_name, r.emb_type, r.emb_model_name).is_file():
            tuned = load_tuned(dataset_name, r.emb_type, r.emb_model_name, num_items=item_emb.shape[0])
    base = load_base_channel(fusion, dataset_name, item_emb=item_emb, tuned=tuned)

    def candidates(histories: Sequence[Sequence[int]]) -> torch.Tensor:
        scores = base.score(histories).float()
        masked = fz.mask_history(scores, fz.history_mask(histories, scores.shape[1], scores.device))
        return fz.stable_top_k(masked, fusion.num_candidates)[0].cpu()

    return candidates
