"""The retrieval service: embeds texts and scores them against one or more catalogues of items.

A plain class — Ray is applied only by :mod:`rl4rec_core.retrieval.actor` — so it is tested and
benchmarked directly. Every method validates its input before touching state, so a bad call raises
a clear error and the service (or the actor holding it) keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rl4rec_core.devices import resolve_device
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.retrieval import rewards as reward_registry
from rl4rec_core.retrieval import scoring
from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval, fuse_query, resolve_tuned, scorer_record
from rl4rec_core.retrieval.checks import check_histories as _check_histories
from rl4rec_core.retrieval.checks import check_k
from rl4rec_core.retrieval.checks import check_targets as _check_targets
from rl4rec_core.retrieval.checks import check_texts as _check_texts
from rl4rec_core.retrieval.base_channel import BaseScorer
from rl4rec_core.retrieval.fused import FUSED, FusedScoring
from rl4rec_core.retrieval.negatives import sample_candidates
from rl4rec_core.settings import DEFAULT_REWARD, SCORERS, FusionSettings, RetrievalSettings

log = logging.getLogger(__name__)


@dataclass
class RewardBatch:
    """What a training step needs from the service, and nothing bigger.

    Attributes:
        rewards: float32 ``[B]``.
        ranks: long ``[B]``, 1-based rank of each target among the candidates (all items, or
            target + sampled negatives).
        scorer: which scorer produced the ranks, e.g. ``hybrid(beta=0.05, alpha=0, m=5)``, ``cosine`` or
            ``fused(base=sasrec, gamma=1)``.
        base_ranks: with the fused scorer, long ``[B]``: each target's rank under the base recommender alone
            (the same candidates); None otherwise.
    """

    rewards: torch.Tensor
    ranks: torch.Tensor
    scorer: str = "cosine"
    base_ranks: torch.Tensor | None = None


class RetrievalService(FusedScoring):
    """Holds item embeddings of several datasets and one text encoder; answers scoring calls.

    Args:
        retrieval: the ``RetrievalSettings``: embedding model and file type, encoder backend, scorer
            (``auto``: each dataset's tuned settings file from ``rl4rec tune-retrieval`` when it exists, else
            cosine; ``hybrid``: the file is required; ``cosine``: ignore it), the weight overrides ``beta``,
            ``alpha``, ``history_m`` and ``chunk_size`` (items scored per matmul; bounds memory at
            ``B x chunk_size`` floats).
        datasets: dataset names whose embeddings are loaded from ``emb_dir()``.
        device: ``auto``, ``cpu`` or ``cuda[:i]`` (:func:`rl4rec_core.devices.resolve_device`); the item
            matrices and the encoder live there, and every result comes back as a CPU tensor.
        encoder: an already-built encoder (``.encode``, ``.dim``, ``.model_name``); skips ``make_encoder``.
        embeddings: already-built ``{dataset: FloatTensor [N, d]}`` served beside ``datasets`` (tests,
            benchmarks, a served model's catalogue). Rows are normalised in place.
        tuned: already-tuned ``{dataset: TunedRetrieval}``; replaces those datasets' files.
        fusion: the ``FusionSettings``: the base recommender fused with the text under ``scorer="fused"``
            (``base`` none: no fused scorer), its serving ``gamma``, ``train_gamma``, ``reward_over_base`` and the
            number of candidates (:mod:`rl4rec_core.retrieval.fused`).
        bases: already-built ``{dataset: BaseScorer}``; replaces what ``fusion.base`` would load for them.
    """

    def __init__(
        self,
        retrieval: RetrievalSettings,
        datasets: Sequence[str] = (),
        *,
        device: str = "cpu",
        encoder=None,
        embeddings: Mapping[str, torch.Tensor] | None = None,
        tuned: Mapping[str, TunedRetrieval] | None = None,
        fusion: FusionSettings | None = None,
        bases: Mapping[str, BaseScorer] | None = None,
    ) -> None:
        if not isinstance(retrieval, RetrievalSettings):
            raise ConfigError("RetrievalService takes RetrievalSettings first, e.g. RetrievalService("
                              "RetrievalSettings(emb_model_name=...), ['ml-100k'])")
        datasets = [datasets] if isinstance(datasets, str) else list(datasets)
        if not embeddings and not datasets:
            raise ConfigError("no datasets to serve; pass at least one name, e.g. datasets=['ml-100k']")
        self.retrieval = retrieval
        self.emb_model_name, self.emb_type, self.chunk_size = retrieval.emb_model_name, retrieval.emb_type, retrieval.chunk_size
        self.device = resolve_device(device)  # before any file or model is read: a bad device fails at once
        # read the item files before loading the encoder: a missing or stale file fails in
        # milliseconds instead of after a model load
        loaded = {name: self._load(name) for name in datasets}
        if encoder is None:
            from rl4rec_core.embeddings.encoders import make_encoder

            encoder = make_encoder(self.emb_model_name, backend=retrieval.emb_backend, device=str(self.device))
        self.encoder = encoder
        self._items: dict[str, torch.Tensor] = {}
        for name, (matrix, sidecar) in loaded.items():
            self._check_model(name, sidecar)
            if matrix.shape[1] != self.encoder.dim:  # the file against the encoder actually loaded
                from rl4rec_core.embeddings.files import dimension_error, embedding_path

                path, model = embedding_path(name, self.emb_type, self.emb_model_name), self.emb_model_name
                raise dimension_error(path, int(matrix.shape[1]), self.encoder.dim, name, self.emb_type, model)
            self._items[name] = self._prepare(name, matrix)
        for name, matrix in (embeddings or {}).items():
            self._items[name] = self._prepare(name, matrix)
        self._settings: dict[str, HybridWeights] = {}
        self._records: dict[str, dict[str, Any]] = {}  # hybrid.scorer_record of each dataset
        self._bias: dict[str, torch.Tensor] = {}  # beta * prior [N], only where beta > 0
        self._tuned: dict[str, TunedRetrieval | None] = {}  # what resolve_tuned gave (echo+prior's weights)
        for name in self._items:
            self._set_retrieval(name, (tuned or {}).get(name))
        self._init_fusion(fusion, bases)  # the base recommenders (fused.py), after the hybrid records
        log.info("retrieval service ready: %s", self.datasets())

    # ------------------------------------------------------------------ loading
    def _load(self, name: str) -> tuple[torch.Tensor, dict]:
        """``name``'s item embeddings and sidecar, validated by ``load_item_embeddings`` (dataset,
        model, float32, finite, sidecar shape, and the prepared item count when the data is here)."""
        from rl4rec_core.embeddings.files import load_item_embeddings

        return load_item_embeddings(name, self.emb_type, self.emb_model_name, expect_items=_prepared_items(name))

    def _set_retrieval(self, name: str, given: TunedRetrieval | None) -> None:
        """The scorer of ``name`` (``resolve_tuned``: the tuned file or ``given``, the settings' weights on top)."""
        n = self._items[name].shape[0]
        tuned = resolve_tuned(name, self.retrieval, n, tuned=given)
        self._records[name] = scorer_record(tuned)
        self._tuned[name] = tuned
        if tuned is None:
            if self.retrieval.scorer == "auto":
                log.warning("no tuned retrieval settings for %r: scoring by plain cosine; run "
                            "`rl4rec tune-retrieval --dataset_name %s` for the hybrid scorer", name, name)
            return
        if len(tuned.prior_counts) != n:
            raise DataError(f"retrieval settings of {name!r} have {len(tuned.prior_counts)} prior counts for {n} items")
        self._settings[name] = tuned.settings
        if tuned.settings.beta > 0:
            self._bias[name] = tuned.settings.beta * tuned.prior().to(self.device)

    def _check_model(self, name: str, sidecar: dict) -> None:
        """The file's model must be the encoder's: a different model's vectors give meaningless cosines."""
        made_by = {sidecar.get("model_name"), sidecar.get("short_name")}
        ours = {self.encoder.model_name, getattr(self.encoder, "short_name", None)}
        if not made_by & ours:
            raise DataError(
                f"embeddings of {name!r} were made with {sidecar.get('model_name')!r} but the service encodes with "
                f"{self.encoder.model_name!r}. Regenerate them with "
                f"`rl4rec embed --dataset {name} --emb_model {self.encoder.model_name}` or serve with "
                f"--emb_model_name {sidecar.get('model_name')}"
            )

    def _prepare(self, name: str, matrix: torch.Tensor) -> torch.Tensor:
        """Validate ``[N, d]`` float32 finite, move to the device, normalise rows in place (cosine = dot)."""
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2 or matrix.shape[0] == 0:
            shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
            raise DataError(f"item embeddings of {name!r} must be a non-empty [num_items, dim] tensor, got {shape}")
        if matrix.dtype != torch.float32:
            raise DataError(f"item embeddings of {name!r} are {matrix.dtype}, expected torch.float32; regenerate them")
        if matrix.shape[1] != self.encoder.dim:
            raise DataError(
                f"item embeddings of {name!r} have dim {matrix.shape[1]} but the encoder "
                f"{self.encoder.model_name!r} gives {self.encoder.dim}; regenerate them with the same model"
            )
        if not torch.isfinite(matrix).all():
            raise DataError(f"item embeddings of {name!r} contain NaN or Inf; regenerate them")
        matrix = matrix.to(self.device)
        # in place: a 1M x 384 catalogue is 1.5 GB and must not be copied
        matrix.div_(matrix.norm(dim=1, keepdim=True).clamp_min_(1e-12))
        return matrix

    # ------------------------------------------------------------------ calls
    def ping(self) -> str:
        return "ok"

    def datasets(self) -> dict[str, tuple[int, int]]:
        """``{dataset: (num_items, dim)}`` for every loaded dataset."""
        return {name: (m.shape[0], m.shape[1]) for name, m in self._items.items()}

    def info(self) -> dict:
        """Device, model, datasets and their scorers, for the server banner and health checks."""
        return {"device": str(self.device), "emb_model_name": self.emb_model_name, "datasets": self.datasets(),
                "scorers": {name: self.scorer(name) for name in self._items},
                "scoring": dict(self._records), "fusion": self.fusion_info()}

    def scorer(self, dataset_name: str, mode: str | None = None) -> str:
        """What scores ``dataset_name`` under ``mode`` (None: its tuned settings), e.g. ``hybrid(beta=0.05, ...)``."""
        return self._settings_for(dataset_name, mode).describe()

    def _settings_for(self, dataset_name: str, mode: str | None) -> HybridWeights:
        self._catalogue(dataset_name)
        if mode is not None and mode not in SCORERS:
            raise ValueError(f"unknown scorer {mode!r}; use hybrid, cosine, fused or None (the dataset's tuned scorer)")
        if mode == "cosine":
            return HybridWeights()
        if mode == "hybrid" and dataset_name not in self._settings:
            raise ValueError(
                f"no tuned retrieval settings for {dataset_name!r} in this service; run "
                f"`rl4rec tune-retrieval --dataset {dataset_name}` and restart the service"
            )
        return self._settings.get(dataset_name, HybridWeights())

    def _query(self, texts, dataset_name: str, histories, settings: HybridWeights):
        """``(query [B, d], bias [N] or None)`` for these texts under ``settings``."""
        items = self._items[dataset_name]
        q = fuse_query(self._embed(texts), items, histories, settings)
        bias = self._bias.get(dataset_name) if settings.beta > 0 else None
        return q, bias

    def calculate_reward(
        self, texts: Sequence[str], dataset_name: str, hybrid: bool = False,
        histories: Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor:
        """Scores of each text against every item: float32 ``[len(texts), num_items]`` (the original's contract).

        Plain cosine by default, as in the original. ``hybrid=True`` adds the tuned prior and, when
        ``histories`` are given, fuses each query with its user's recent items (nothing is masked).
        """
        items = self._catalogue(dataset_name)
        texts = _check_texts(texts)
        histories = _check_histories(histories, len(texts), items.shape[0])
        settings = self._settings_for(dataset_name, "hybrid" if hybrid else "cosine")
        q, bias = self._query(texts, dataset_name, histories, settings)
        return scoring.full_scores(q, items, self.chunk_size, bias=bias).cpu()

    def compute_rewards(
        self,
        texts: Sequence[str],
        dataset_name: str,
        targets: Sequence[int] | torch.Tensor,
        histories: Sequence[Sequence[int]] | None = None,
        reward: str = DEFAULT_REWARD,
        num_negatives: int = 0,
        seed: int | None = None,
        scorer: str | None = None,
        gamma: float | None = None,
        **reward_kwargs,
    ) -> RewardBatch:
        """Rank each user's target for the text generated for them and turn ranks into rewards.

        Args:
            texts: ``B`` generated texts.
            targets: ``[B]`` the item each user really consumed next.
            histories: optional per-user item indices, masked out (the target never is).
            reward: a name from :mod:`rl4rec_core.retrieval.rewards` or a dotted path to a user function.
            num_negatives: 0 ranks against the full catalogue; ``n > 0`` ranks the target against
                ``n`` sampled items outside the history (reproducible with ``seed``).
            scorer: None = the dataset's tuned scorer (hybrid when tuned), ``cosine``, ``hybrid``, or ``fused``
                (the base recommender's and the text's standardised scores, ``histories`` required; the batch
                then holds ``base_ranks`` too, and with ``reward_over_base`` the reward is the gain over the base).
            gamma: the text's weight under ``fused`` (training passes ``FusionSettings.train_gamma``); None =
                the serving gamma (the settings', else the tuned, else the untuned one).
            **reward_kwargs: passed through to the reward function.
        """
        items = self._catalogue(dataset_name)
        n = items.shape[0]
        texts = _check_texts(texts)
        targets = _check_targets(targets, len(texts), n)
        histories = _check_histories(histories, len(texts), n)
        if not isinstance(num_negatives, int) or num_negatives < 0:
            raise ValueError(f"num_negatives must be an integer >= 0, got {num_negatives!r}")
        fn = reward_registry.resolve_reward(reward)
        needs_scores = getattr(fn, "needs_scores", True)
        extra = {"texts": list(texts), "histories": histories, "dataset_name": dataset_name}
        clash = set(reward_kwargs) & (set(extra) | {"ranks", "scores", "targets", "num_items", "num_candidates", "target_columns"})
        if clash:
            raise ValueError(f"reward keyword(s) {sorted(clash)} are reserved; rename them")

        call = _reward_call(fn, str(reward), targets, n, num_negatives, {**extra, **reward_kwargs})
        if scorer == FUSED:
            rewards, ranks, base_ranks, described = self._fused_rewards(
                texts, dataset_name, targets, histories, gamma, num_negatives, seed, needs_scores, call)
            return RewardBatch(rewards=rewards, ranks=ranks, scorer=described, base_ranks=base_ranks)
        _no_gamma(gamma)
        settings = self._settings_for(dataset_name, scorer)
        q, bias = self._query(texts, dataset_name, histories, settings)
        scores, ranks = self._rank_targets(q, bias, items, targets, histories, num_negatives, seed, needs_scores)
        return RewardBatch(rewards=call(ranks, scores), ranks=ranks.cpu(), scorer=settings.describe())

    def _rank_targets(self, q, bias, items, targets, histories, num_negatives: int, seed, needs_scores: bool):
        """``(scores, ranks [B])`` of each target: among ``num_negatives`` sampled items, or the catalogue.

        scores: ``[B, 1 + num_negatives]`` (target in column 0), ``[B, num_items]``, or None when the
        reward needs ranks only (then no full score matrix is kept).
        """
        n = items.shape[0]
        if num_negatives:
            cands = sample_candidates(targets, histories, n, num_negatives, seed).to(self.device)
            scores = torch.einsum("bd,bcd->bc", q, items[cands])  # [B, 1 + n]
            if bias is not None:
                scores += bias[cands]
            ranks = 1 + (scores[:, 1:] >= scores[:, :1]).sum(dim=1)
        elif needs_scores:
            scores = scoring.full_scores(q, items, self.chunk_size, histories, targets.to(self.device), bias)
            ranks = scoring.ranks_from_scores(scores, targets.to(self.device), self.chunk_size)
        else:
            scores = None
            ranks = scoring.chunked_ranks(q, items, targets.to(self.device), self.chunk_size, histories, bias)
        return scores, ranks

    def top_k(
        self, texts: Sequence[str], dataset_name: str, k: int = 10, histories: Sequence[Sequence[int]] | None = None,
        scorer: str | None = None, gamma: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``k`` items per text, history masked: ``(indices [B, k] long, scores [B, k] float32)``.

        ``scorer``: None = the dataset's tuned scorer, as rewards and evaluation use it; or ``cosine``/``hybrid``;
        or ``fused`` (``histories`` required; ``gamma`` None = the serving gamma; ties to the smaller index).
        """
        items = self._catalogue(dataset_name)
        check_k(k, items.shape[0], dataset_name)
        if scorer == FUSED:
            return self._fused_top_k(texts, dataset_name, k, histories, gamma)
        _no_gamma(gamma)
        texts = _check_texts(texts)
        histories = _check_histories(histories, len(texts), items.shape[0])
        q, bias = self._query(texts, dataset_name, histories, self._settings_for(dataset_name, scorer))
        idx, s = scoring.chunked_top_k(q, items, k, self.chunk_size, histories, bias)
        return idx.cpu(), s.cpu()

    # ------------------------------------------------------------------ helpers
    def _catalogue(self, dataset_name: str) -> torch.Tensor:
        if dataset_name not in self._items:
            raise ValueError(
                f"unknown dataset {dataset_name!r}; this service has {sorted(self._items)}. Start it with "
                f"--datasets {dataset_name} (plus the ones you need) or fix the dataset name"
            )
        return self._items[dataset_name]

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        q = self.encoder.encode(list(_check_texts(texts)))
        q = torch.as_tensor(q, dtype=torch.float32).to(self.device)
        if q.shape != (len(texts), self.encoder.dim) or not torch.isfinite(q).all():
            raise RuntimeError(f"encoder returned shape {tuple(q.shape)} or non-finite values for {len(texts)} texts")
        return q


def _reward_call(fn, name: str, targets: torch.Tensor, n: int, num_negatives: int, extra: dict):
    """``call(ranks, scores) -> rewards [B]``: the reward function with everything the caller knows bound."""

    def call(ranks: torch.Tensor, scores: torch.Tensor | None) -> torch.Tensor:
        values = fn(
            ranks=ranks.cpu(),
            scores=scores.cpu() if scores is not None else None,
            targets=targets,
            num_items=n,
            num_candidates=1 + num_negatives if num_negatives else n,
            # where each target sits in `scores`: column 0 with sampled negatives, its index otherwise
            target_columns=torch.zeros_like(targets) if num_negatives else targets,
            **extra,
        )
        return reward_registry.check_rewards(values, len(targets), name)

    return call


def _no_gamma(gamma) -> None:
    if gamma is not None:
        raise ValueError(f"gamma={gamma!r} weighs the text in the fused score only; pass scorer='fused' or no gamma")


def _prepared_items(name: str) -> int | None:
    """Item count of the prepared dataset, when it is present here (the actor may run where it is not)."""
    from rl4rec_core.paths import dataset_dir

    path = dataset_dir(name) / "items.parquet"
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
