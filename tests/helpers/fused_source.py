"""A stand-in for the retrieval service's fused channel while it is written (issue 20): a real
``RetrievalService`` underneath, plus the two calls the fused recipe's trainer makes.

* ``candidates(dataset_name, histories, k) -> LongTensor [B, k]``: the base's top-K from the history alone.
  Here the "base" is the real service's top-K for the title of the last history item (history masked):
  deterministic, target-free, and genre-loyal on the tiny dataset, as a real base would be.
* ``compute_rewards(..., scorer="fused", gamma=...)``: recorded, then ranked by the real service's cosine
  scorer (``gamma`` is only recorded); ``base_ranks`` are the ranks of the history-only query above.
"""

from __future__ import annotations

import torch


class FusedStandIn:
    def __init__(self, service, dataset):
        self.service, self.dataset = service, dataset
        self.reward_calls: list[dict] = []
        self.candidate_calls: list[tuple[str, list[list[int]], int]] = []

    def datasets(self):
        return self.service.datasets()

    def candidates(self, dataset_name: str, histories, k: int) -> torch.Tensor:
        self.candidate_calls.append((dataset_name, [list(h) for h in histories], k))
        titles = self.dataset.item_titles
        # the service's own copy of the catalogue (a test may train on a copy of it under another name)
        idx, _ = self.service.top_k([titles[h[-1]] for h in histories], self.dataset.name, k=k, histories=histories,
                                    scorer="cosine")
        return idx

    def compute_rewards(self, texts, dataset_name, targets, histories=None, reward="ndcg@10", num_negatives=0,
                        seed=None, scorer=None, gamma=None, **kw):
        self.reward_calls.append({"n": len(texts), "scorer": scorer, "gamma": gamma, "reward": reward})
        out = self.service.compute_rewards(texts, dataset_name, targets, histories, reward, num_negatives, seed,
                                           scorer="cosine", **kw)
        if scorer == "fused":  # as the service's batch: the base's own rank of each target too
            titles = self.dataset.item_titles
            out.base_ranks = self.service.compute_rewards([titles[h[-1]] for h in histories], dataset_name, targets,
                                                          histories, reward, num_negatives, seed, scorer="cosine").ranks
        return out
