"""Choose the hybrid scorer's settings by grid search on the **validation** split (test is never read).

Two stages, so that the strongest non-LLM baseline and the LLM share one scorer:

1. ``beta`` and ``m`` with the echo+prior query (the mean embedding of the user's last ``m`` items):
   what ``echo+prior`` uses, and the prior every LLM row is scored with.
2. optionally ``alpha`` with ``beta`` and ``m`` fixed, on a policy's generated validation texts:
   how much of the recent-items embedding to fuse into the text query. ``alpha`` large makes the
   query the echo+prior one, so the grid includes "almost all history" and "text only".

Scores are ``[users, items]`` matrices: fine for catalogues of tens of thousands of items on the
validation users; the grid is a few dozen matrix additions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError
from rl4rec_core.retrieval.hybrid import HybridWeights, history_mean
from rl4rec_core.settings import ALPHA_GRID, BETA_GRID, M_GRID, RetrievalSettings

log = logging.getLogger(__name__)

DEFAULT_BETAS, DEFAULT_MS, DEFAULT_ALPHAS = BETA_GRID, M_GRID, ALPHA_GRID
SELECT_METRIC = "ndcg@10"


@dataclass
class GridPoint:
    settings: HybridWeights
    metrics: dict[str, float]

    def row(self) -> dict:
        return {**self.settings.to_dict(), **self.metrics}


def _check_grid(name: str, values: Sequence, minimum: float) -> tuple:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum for v in values):
        raise ConfigError(f"the {name} grid must be non-empty numbers >= {minimum}, got {list(values)}")
    return values


def _evaluate(q: torch.Tensor, item_emb: torch.Tensor, prior: torch.Tensor, beta: float, split) -> dict[str, float]:
    """Metrics of ``q [U, d] @ item_emb.T + beta * prior`` on the split (history masked)."""
    scores = q @ item_emb.T + beta * prior
    ranks = metrics.target_ranks(scores, split.targets, split.histories)
    return metrics.summarize(ranks, (10,))


def tune_prior(
    item_emb: torch.Tensor, prior: torch.Tensor, valid, betas=DEFAULT_BETAS, ms=DEFAULT_MS,
) -> tuple[GridPoint, list[GridPoint]]:
    """Stage 1: best ``(beta, m)`` for the echo+prior query on ``valid``; returns ``(best, grid)``.

    Args:
        item_emb: row-normalised ``[N, d]``.
        prior: ``log(1 + training count)`` ``[N]``.
        valid: a split with ``histories`` and ``targets``.
    Ties on the metric keep the earlier (simpler: smaller beta, smaller m) point.
    """
    betas, ms = _check_grid("beta", betas, 0), _check_grid("m", ms, 1)
    if any(int(m) != m for m in ms):
        raise ConfigError(f"the m grid must be integers >= 1, got {list(ms)}")
    grid: list[GridPoint] = []
    for m in ms:
        q = torch.nn.functional.normalize(history_mean(item_emb, valid.histories, int(m)), dim=1)
        for beta in betas:
            grid.append(GridPoint(HybridWeights(beta=beta, history_m=int(m)), _evaluate(q, item_emb, prior, beta, valid)))
    best = max(grid, key=lambda p: p.metrics[SELECT_METRIC])  # max keeps the first of equals
    log.info("echo+prior on validation: best %s %s=%.4f", best.settings.describe(), SELECT_METRIC,
             best.metrics[SELECT_METRIC])
    return best, grid


def tune_alpha(
    text_emb: torch.Tensor, item_emb: torch.Tensor, prior: torch.Tensor, valid, base: HybridWeights,
    alphas=DEFAULT_ALPHAS,
) -> tuple[GridPoint, list[GridPoint]]:
    """Stage 2: best ``alpha`` for fusing policy texts ``text_emb [U, d]`` (unit rows, one per valid user)
    with the recent items, ``beta`` and ``m`` fixed at ``base``'s; returns ``(best, grid)``."""
    alphas = _check_grid("alpha", alphas, 0)
    if text_emb.shape[0] != len(valid.histories):
        raise ConfigError(f"got {text_emb.shape[0]} text embeddings for {len(valid.histories)} validation users")
    recent = history_mean(item_emb, valid.histories, base.history_m)
    grid = []
    for alpha in alphas:
        q = torch.nn.functional.normalize(text_emb + alpha * recent, dim=1)
        settings = HybridWeights(beta=base.beta, alpha=alpha, history_m=base.history_m)
        grid.append(GridPoint(settings, _evaluate(q, item_emb, prior, base.beta, valid)))
    best = max(grid, key=lambda p: p.metrics[SELECT_METRIC])
    log.info("policy texts on validation: best %s %s=%.4f", best.settings.describe(), SELECT_METRIC,
             best.metrics[SELECT_METRIC])
    return best, grid


def tune_retrieval(
    dataset_name: str, retrieval: RetrievalSettings, texts: Sequence[str] | None = None, text_source: str | None = None,
    betas=DEFAULT_BETAS, ms=DEFAULT_MS, alphas=DEFAULT_ALPHAS, device: str = "cpu",
) -> dict:
    """Tune on ``dataset_name``'s validation split and write the settings file; returns what was written.

    ``retrieval`` names the embeddings (``emb_model_name``, ``emb_type``) and the encoder (``emb_backend``).
    With ``texts`` (a policy's greedy text for every validation user, in split order:
    ``policy_eval.generate_split_texts``) stage 2 fuses them; ``text_source`` (e.g. the checkpoint) is recorded.
    """
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import load_item_embeddings
    from rl4rec_core.retrieval.hybrid import TunedRetrieval, save_tuned, settings_path, train_counts

    model, emb_type = retrieval.emb_model_name, retrieval.emb_type
    dataset = load_dataset(dataset_name)
    emb, _ = load_item_embeddings(dataset_name, emb_type, model, expect_items=dataset.num_items)
    item_emb = torch.nn.functional.normalize(emb.float(), dim=1)
    counts = train_counts(dataset.train_histories(), dataset.num_items)
    prior = torch.log1p(torch.tensor(counts, dtype=torch.float32))
    valid = dataset.split("valid")
    best, grid = tune_prior(item_emb, prior, valid, betas, ms)
    validation = {"split": "valid", "users": len(valid), "metric": SELECT_METRIC,
                  "echo_prior": best.row(), "grid": [p.row() for p in grid]}
    if texts is not None:
        text_emb = _text_embeddings(list(texts), retrieval, device)
        best, alpha_grid = tune_alpha(text_emb, item_emb, prior, valid, best.settings, alphas)
        validation.update(policy=str(text_source), policy_fused=best.row(), alpha_grid=[p.row() for p in alpha_grid])
    tuned = TunedRetrieval(dataset_name, best.settings, counts, validation)
    path = save_tuned(settings_path(dataset_name, emb_type, model), tuned, model, emb_type)
    return {"path": str(path), "settings": best.settings.to_dict(), "scorer": best.settings.describe(),
            "validation": validation}


def _text_embeddings(texts: list[str], retrieval: RetrievalSettings, device: str) -> torch.Tensor:
    """Unit embeddings ``[U, d]`` of the texts, by the retrieval settings' encoder."""
    from rl4rec_core.embeddings.encoders import close_encoder, make_encoder

    encoder = make_encoder(retrieval.emb_model_name, backend=retrieval.emb_backend, device=device)
    try:
        # on the CPU, where the item matrix and prior are: the Encoder protocol does not promise CPU vectors
        vectors = torch.as_tensor(encoder.encode(texts)).to("cpu", torch.float32)
    finally:
        close_encoder(encoder)
    return torch.nn.functional.normalize(vectors, dim=1)
