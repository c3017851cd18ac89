"""A policy judged as the fused recommender it serves as: its text fused with the base, gamma chosen on validation.

For one policy, on the same users as every other row:
1. its greedy texts for the *validation* users (the candidates prompt: the base's top-K of each history) are
   ranked under every gamma of the grid (``fused_grid_ranks``: ``z(base) + gamma * z(cos(text, item))``), and
   the gamma of the best validation NDCG@10 is kept (ties: the smaller; 0 is the base alone);
2. its greedy texts for the evaluated split's users are ranked once under that gamma (the "fused" row) and by
   the text alone (the seed's original channel: the service's own scorer, the "text" row).

So the test split is read once, after every choice was made on validation. ``write_record`` (the run's final
policy) stores the chosen gamma as the dataset's fusion record (``retrieval.fusion_tuning.tune_gamma``), which
the retrieval service and the registered model then serve with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError
from rl4rec_core.evaluation.policy_eval import _rank_texts, generate_split_texts, select_users
from rl4rec_core.retrieval.fusion_tuning import check_grid, choose_gamma, tune_gamma
from rl4rec_core.settings import GAMMA_GRID, FusionSettings

log = logging.getLogger(__name__)


def gamma_users(dataset, fusion: FusionSettings, seed: int) -> np.ndarray:
    """The validation rows gamma is chosen on: a seeded subset of ``fusion.gamma_users`` (all when None)."""
    return select_users(len(dataset.split("valid")), fusion.gamma_users, seed)


def split_texts(dataset, policy, split: str, users: np.ndarray, service, fusion: FusionSettings,
                batch_size: int = 32, progress: bool = False) -> tuple[list[str], list[list[int]], list[int]]:
    """``(texts, histories, targets)`` of ``users`` (rows of ``split``): the policy's greedy text from the
    candidates prompt, what each user consumed before, and the item each consumed next."""
    sp = dataset.split(split)
    histories = [list(map(int, sp.histories[i])) for i in users]
    targets = [int(sp.targets[i]) for i in users]
    texts = generate_split_texts(dataset, policy, split, batch_size, progress, service, fusion, users)
    return texts, histories, targets


def evaluate_fused(dataset, policy, service, fusion: FusionSettings, split: str, users: np.ndarray,
                   valid_users: np.ndarray, grid: Sequence[float] = GAMMA_GRID, gamma: float | None = None,
                   write_record: bool = False, text_source: str | None = None, batch_size: int = 32,
                   progress: bool = False) -> dict[str, Any]:
    """``{"fused": (summary, ranks), "text": (summary, ranks), "gamma": g, "validation": [{gamma, ndcg@10}]}``.

    ``gamma`` given: used as is (nothing is tuned). ``split`` must not be ``valid`` when gamma is tuned there
    and ``users`` overlap: a choice and its judgement on the same users would flatter the row.
    """
    if fusion.base == "none":
        raise ConfigError("a fused evaluation needs a base recommender; pass --base sasrec or --base echo+prior")
    validation: list[dict[str, float]] = []
    if gamma is None:
        grid = check_grid(grid)
        texts, histories, targets = split_texts(dataset, policy, "valid", valid_users, service, fusion, batch_size,
                                                progress)
        if write_record:
            record = tune_gamma(service, dataset.name, texts, targets, histories, grid, text_source=text_source)
            gamma, validation = float(record["gamma"]), record["validation"]["by_gamma"]
        else:
            ranks = torch.cat([torch.as_tensor(service.fused_grid_ranks(
                texts[i:i + 256], dataset.name, targets[i:i + 256], histories[i:i + 256], grid))
                for i in range(0, len(texts), 256)], dim=1)
            ndcg = [float(metrics.ndcg_at_k(r, 10).float().mean()) for r in ranks]
            gamma = choose_gamma(grid, ndcg)
            validation = [{"gamma": g, "ndcg@10": v} for g, v in zip(grid, ndcg)]
    texts, histories, targets = split_texts(dataset, policy, split, users, service, fusion, batch_size, progress)
    fused, text = [], []
    for i in range(0, len(texts), batch_size):
        part = (texts[i:i + batch_size], dataset.name, targets[i:i + batch_size], histories[i:i + batch_size])
        fused.append(torch.as_tensor(service.compute_rewards(
            part[0], part[1], targets=part[2], histories=part[3], reward="mrr", scorer="fused", gamma=gamma).ranks))
        text.append(torch.as_tensor(_rank_texts(service, *part).ranks))
    out = {}
    for name, parts in (("fused", fused), ("text", text)):
        ranks = torch.cat(parts).reshape(-1).long()
        out[name] = ({**metrics.summarize(ranks), "gamma": gamma} if name == "fused" else metrics.summarize(ranks),
                     ranks)
    log.info("fused %s: gamma=%g ndcg@10 %.4f (text alone %.4f)", split, gamma, out["fused"][0]["ndcg@10"],
             out["text"][0]["ndcg@10"])
    return {**out, "gamma": gamma, "validation": validation}

