"""The retrieval service's fused scorer: a base recommender's scores fused with the text's (``retrieval.fusion``).

A mixin of :class:`~rl4rec_core.retrieval.service.RetrievalService` (which keeps the items, the encoder and the
input checks): the base of each dataset, its serving ``gamma``, the candidates a prompt shows, and the fused
ranks and top-k. Each call computes ``[B, N]`` matrices (the base's scores are one); ``B`` is a step's batch.

- ``candidates``: the base's top-K from the history alone (history masked, ties to the smaller index): what
  the prompt shows. No target is passed in, so none can leak into it.
- fused ranks: ``z(base) + gamma * z(cos(text, item))`` (``fusion.fused_scores``), the history but not the
  target masked, pessimistic on ties like ``metrics.target_ranks``; ``gamma = 0`` is the base's own ranking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.retrieval import fusion as fz
from rl4rec_core.retrieval import scoring
from rl4rec_core.retrieval.base_channel import BaseScorer, load_base_channel
from rl4rec_core.retrieval.checks import check_histories, check_k, check_targets, check_texts
from rl4rec_core.retrieval.fusion_tuning import resolve_gamma
from rl4rec_core.retrieval.negatives import sample_candidates
from rl4rec_core.settings import FusionSettings

log = logging.getLogger(__name__)

FUSED = "fused"


class FusedScoring:
    """What the service adds for ``scorer="fused"``; expects ``_items``, ``_records``, ``_tuned``, ``_embed``,
    ``_catalogue``, ``chunk_size``, ``device``, ``emb_type`` and ``emb_model_name`` on ``self``."""

    # ------------------------------------------------------------------ set-up
    def _init_fusion(self, fusion: FusionSettings | None, bases: Mapping[str, BaseScorer] | None) -> None:
        if fusion is not None and not isinstance(fusion, FusionSettings):
            raise ConfigError(f"fusion must be FusionSettings or None, got {type(fusion).__name__}")
        self.fusion = fusion if fusion is not None else FusionSettings()
        bases = dict(bases or {})
        unknown = sorted(set(bases) - set(self._items))
        if unknown:
            raise ConfigError(f"bases given for {unknown}, which this service does not hold ({sorted(self._items)})")
        self._bases: dict[str, BaseScorer] = {}
        self._gamma: dict[str, dict[str, Any]] = {}
        for name in self._items:
            base = bases.get(name)
            if base is None:
                base = load_base_channel(self.fusion, name, item_emb=self._items[name], tuned=self._echo_tuned(name))
            elif not callable(getattr(base, "score", None)) or not callable(getattr(base, "record", None)):
                raise ConfigError(f"the base of {name!r} ({type(base).__name__}) has no score(histories) and record()")
            if base is None:
                continue
            self._bases[name] = base
            record = dict(base.record())
            # the base decides GRPO's rewards with the fused scorer: a resumed run compares it (training/resume)
            self._records[name] = {**self._records[name], "fusion_base": record}
            self._gamma[name] = resolve_gamma(self.fusion, name, self.emb_type, self.emb_model_name, record)

    def _echo_tuned(self, name: str):
        """The hybrid scorer's tuned settings of ``name`` for echo+prior (also under ``--scorer cosine``)."""
        tuned = self._tuned.get(name)
        if tuned is None and self.fusion.base == "echo+prior":
            from rl4rec_core.retrieval.hybrid import load_tuned, settings_path

            if settings_path(name, self.emb_type, self.emb_model_name).is_file():
                tuned = load_tuned(name, self.emb_type, self.emb_model_name, num_items=self._items[name].shape[0])
        return tuned

    def fusion_info(self) -> dict[str, dict[str, Any]]:
        """``{dataset: {base, base_record, gamma, gamma_source, path, ...}}`` for the datasets with a base."""
        f = self.fusion
        return {name: {"base": base.record().get("base"), "base_record": dict(base.record()),
                       "gamma": self._gamma[name]["gamma"], "gamma_source": self._gamma[name]["source"],
                       "fusion_sha256": self._gamma[name]["sha256"], "path": self._gamma[name]["path"],
                       "emb_type": self.emb_type, "train_gamma": f.train_gamma,
                       "reward_over_base": f.reward_over_base, "num_candidates": f.num_candidates}
                for name, base in self._bases.items()}

    def set_gamma(self, dataset_name: str, gamma: float, source: str = "tuned", sha256: str | None = None) -> float:
        """Serve ``dataset_name`` with ``gamma`` from now on (``tune_gamma`` calls it); ``FusionSettings.gamma``,
        when given, wins. Returns the serving gamma."""
        self._base(dataset_name)
        gamma = fz.check_gamma(gamma)
        current = self._gamma[dataset_name]
        if current["source"] == "settings":
            log.info("gamma of %r stays %g (given in the settings), not the tuned %g", dataset_name,
                     current["gamma"], gamma)
        else:
            self._gamma[dataset_name] = {**current, "gamma": gamma, "source": source, "sha256": sha256}
        return self._gamma[dataset_name]["gamma"]

    # ------------------------------------------------------------------ calls
    def candidates(self, dataset_name: str, histories: Sequence[Sequence[int]], k: int | None = None) -> torch.Tensor:
        """The base's top ``k`` (default ``fusion.num_candidates``) items per history: long ``[B, k]``, best
        first, history masked, ties to the smaller item index. Computed from the histories alone."""
        n = self._catalogue(dataset_name).shape[0]
        base = self._base(dataset_name)
        k = check_k(self.fusion.num_candidates if k is None else k, n, dataset_name)
        if histories is None or isinstance(histories, str) or not len(histories):
            raise ValueError("candidates need one (possibly empty) history per user, e.g. [[3, 17], []]")
        histories = check_histories(histories, len(histories), n)
        self._check_room(histories, n, k, dataset_name)
        scores = fz.mask_history(self._base_scores(base, dataset_name, histories), fz.history_mask(histories, n, self.device))
        return fz.stable_top_k(scores, k)[0].cpu()

    def fused_grid_ranks(self, texts: Sequence[str], dataset_name: str, targets, histories,
                         gammas: Sequence[float]) -> torch.Tensor:
        """Long ``[G, B]``: each target's fused rank at each of ``gammas``, in their order (what ``tune_gamma``
        compares)."""
        texts = check_texts(texts)
        targets, histories = self._fused_inputs(texts, dataset_name, targets, histories)
        if isinstance(gammas, (str, bytes)) or not isinstance(gammas, Sequence) or not len(gammas):
            raise ConfigError(f"gammas must be a non-empty list of numbers >= 0, got {gammas!r}")
        gammas = [fz.check_gamma(g) for g in gammas]
        base, cos, exclude = self._channels(texts, dataset_name, histories)
        mask = fz.history_mask(histories, base.shape[1], self.device, targets.to(self.device))
        t = targets.to(self.device)
        return torch.stack([scoring.ranks_from_scores(fz.mask_history(fz.fused_scores(base, cos, g, exclude=exclude), mask),
                                                      t, self.chunk_size) for g in gammas]).cpu()

    # ------------------------------------------------------------------ used by compute_rewards / top_k
    def _fused_rewards(self, texts, dataset_name: str, targets, histories, gamma: float | None, num_negatives: int,
                       seed, needs_scores: bool, call: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]):
        """``(rewards [B], ranks [B], base ranks [B], scorer description)`` under the fused score; ``call(ranks,
        scores)`` is the reward function. With ``reward_over_base`` the reward is ``call(fused) - call(base)``."""
        targets, histories = self._fused_inputs(texts, dataset_name, targets, histories)
        gamma = self._serving_gamma(dataset_name, gamma)
        base, cos, exclude = self._channels(texts, dataset_name, histories)
        mask = fz.history_mask(histories, base.shape[1], self.device, targets.to(self.device))
        fused = fz.mask_history(fz.fused_scores(base, cos, gamma, exclude=exclude), mask)
        alone = fz.mask_history(fz.fused_scores(base, cos, 0.0, exclude=exclude), mask)
        scores, ranks = self._ranks_in(fused, targets, histories, num_negatives, seed, needs_scores)
        base_scores, base_ranks = self._ranks_in(alone, targets, histories, num_negatives, seed, needs_scores)
        rewards = call(ranks, scores)
        if self.fusion.reward_over_base:
            rewards = rewards - call(base_ranks, base_scores)
        return rewards, ranks, base_ranks, self._describe(dataset_name, gamma)

    def _fused_top_k(self, texts, dataset_name: str, k: int, histories, gamma: float | None):
        texts = check_texts(texts)
        histories = self._require_histories(histories, len(texts), self._catalogue(dataset_name).shape[0])
        gamma = self._serving_gamma(dataset_name, gamma)
        base, cos, exclude = self._channels(texts, dataset_name, histories)
        idx, s = fz.stable_top_k(fz.mask_history(fz.fused_scores(base, cos, gamma, exclude=exclude), exclude), k)
        return idx.cpu(), s.cpu()

    # ------------------------------------------------------------------ helpers
    def _base(self, dataset_name: str) -> BaseScorer:
        self._catalogue(dataset_name)
        base = self._bases.get(dataset_name)
        if base is None:
            raise ValueError(f"scorer 'fused' needs a base recommender for {dataset_name!r}, and this service has none; "
                             f"start it with the fusion settings' base sasrec or echo+prior (--base)")
        return base

    def _serving_gamma(self, dataset_name: str, gamma: float | None) -> float:
        self._base(dataset_name)
        return self._gamma[dataset_name]["gamma"] if gamma is None else fz.check_gamma(gamma)

    def _describe(self, dataset_name: str, gamma: float) -> str:
        return f"fused(base={self._bases[dataset_name].record().get('base')}, gamma={gamma:g})"

    def _require_histories(self, histories, batch_size: int, num_items: int):
        if histories is None:
            raise ValueError("scorer 'fused' needs histories: the base recommender scores from them; pass one "
                             "(possibly empty) list of item indices per text")
        return check_histories(histories, batch_size, num_items)

    def _fused_inputs(self, texts, dataset_name: str, targets, histories):
        n = self._catalogue(dataset_name).shape[0]
        self._base(dataset_name)
        return check_targets(targets, len(texts), n), self._require_histories(histories, len(texts), n)

    def _channels(self, texts, dataset_name: str, histories):
        """``(base [B, N], cos [B, N], history mask [B, N])`` on the service's device."""
        items = self._items[dataset_name]
        base = self._base_scores(self._base(dataset_name), dataset_name, histories)
        cos = scoring.full_scores(self._embed(texts), items, self.chunk_size)
        return base, cos, fz.history_mask(histories, items.shape[0], self.device)

    def _base_scores(self, base: BaseScorer, dataset_name: str, histories) -> torch.Tensor:
        n = self._items[dataset_name].shape[0]
        scores = torch.as_tensor(base.score(histories)).to(self.device, torch.float32)
        if scores.shape != (len(histories), n) or not torch.isfinite(scores).all():
            raise RuntimeError(f"the base of {dataset_name!r} returned shape {tuple(scores.shape)} or non-finite "
                               f"scores for {len(histories)} histories and {n} items; a base returns every item's finite score (the "
                               f"service masks the history)")
        return scores

    def _ranks_in(self, scores, targets, histories, num_negatives: int, seed, needs_scores: bool):
        """``(scores or None, ranks [B])`` of each target in masked ``scores [B, N]``: among ``num_negatives``
        sampled items (target in column 0; the same ``seed`` draws the same items), or the catalogue."""
        t = targets.to(scores.device)
        if num_negatives:
            cands = sample_candidates(targets, histories, scores.shape[1], num_negatives, seed).to(scores.device)
            s = scores.gather(1, cands)
            return (s.cpu() if needs_scores else None), (1 + (s[:, 1:] >= s[:, :1]).sum(dim=1)).cpu()
        ranks = scoring.ranks_from_scores(scores, t, self.chunk_size)
        return (scores.cpu() if needs_scores else None), ranks.cpu()

    @staticmethod
    def _check_room(histories, num_items: int, k: int, dataset_name: str) -> None:
        longest = max((len(set(h)) for h in histories), default=0)
        if num_items - longest < k:
            raise ValueError(f"k={k} candidates do not fit: a history holds {longest} of the {num_items} items of "
                             f"{dataset_name!r}; use k <= {num_items - longest}")
