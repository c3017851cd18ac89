"""A policy judged as the fused recommender: gamma chosen on validation users, the split ranked once, fused and
text-alone rows. A real RetrievalService with the echo+prior base over the tiny dataset; the dummy policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError
from rl4rec_core.evaluation.fused_eval import evaluate_fused, gamma_users, split_texts
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.retrieval import RetrievalService
from rl4rec_core.settings import FusionSettings, RetrievalSettings, Settings
from tests.helpers.tiny_recdata import WordVectorEncoder

FUSION = FusionSettings(base="echo+prior", num_candidates=5)


@pytest.fixture
def fused_service(tiny):
    encoder = WordVectorEncoder()
    emb = encoder.encode([f"{r.title} ({r.year}). Genres: {r.genres}" for r in tiny.items.itertuples()])
    return RetrievalService(RetrievalSettings(emb_model_name=encoder.model_name), encoder=encoder,
                            embeddings={tiny.name: emb}, fusion=FUSION)


def dummy(tiny):
    return build_policy(Settings.of(dataset_name=tiny.name, policy="dummy", base="echo+prior", num_candidates=5), tiny)


def test_gamma_is_the_best_on_validation_and_the_rows_are_what_the_service_ranks(tiny, fused_service):
    policy = dummy(tiny)
    users, valid_users = np.arange(len(tiny.split("test"))), np.arange(len(tiny.split("valid")))
    grid = (0.0, 0.5, 2.0)
    out = evaluate_fused(tiny, policy, fused_service, FUSION, "test", users, valid_users, grid=grid, batch_size=5)
    # the chosen gamma is the grid's best validation NDCG@10 (the smaller among equals), recomputed here
    texts, hs, ts = split_texts(tiny, policy, "valid", valid_users, fused_service, FUSION)
    by_gamma = [float(metrics.ndcg_at_k(torch.as_tensor(fused_service.fused_grid_ranks(texts, tiny.name, ts, hs, [g]))[0],
                                        10).float().mean()) for g in grid]
    assert [row["ndcg@10"] for row in out["validation"]] == pytest.approx(by_gamma)
    assert out["gamma"] == grid[int(np.argmax(by_gamma))]
    # the test rows: the same texts ranked fused at that gamma, and by the text alone
    texts, hs, ts = split_texts(tiny, policy, "test", users, fused_service, FUSION)
    fused = fused_service.compute_rewards(texts, tiny.name, targets=ts, histories=hs, reward="mrr", scorer="fused",
                                          gamma=out["gamma"]).ranks
    alone = fused_service.compute_rewards(texts, tiny.name, targets=ts, histories=hs, reward="mrr").ranks
    assert out["fused"][1].tolist() == fused.tolist() and out["text"][1].tolist() == alone.tolist()
    assert out["fused"][0]["gamma"] == out["gamma"] and out["fused"][0]["ndcg@10"] == pytest.approx(
        float(metrics.ndcg_at_k(fused, 10).float().mean()))


def test_a_given_gamma_tunes_nothing_and_write_record_stores_the_choice(tiny, fused_service, rl4rec_dirs):
    policy, users = dummy(tiny), np.arange(6)
    given = evaluate_fused(tiny, policy, fused_service, FUSION, "test", users, users, gamma=0.0)
    assert given["validation"] == [] and given["gamma"] == 0.0
    base_alone = fused_service.compute_rewards(["x"] * 6, tiny.name, targets=[int(t) for t in tiny.split("test").targets[:6]],
                                               histories=[list(h) for h in tiny.split("test").histories[:6]],
                                               reward="mrr", scorer="fused", gamma=0.0).ranks
    assert given["fused"][1].tolist() == base_alone.tolist()  # gamma 0: the base alone, whatever the text
    written = evaluate_fused(tiny, policy, fused_service, FUSION, "test", users, users, grid=(0.0, 1.0),
                             write_record=True, text_source="test")
    path = fused_service.info()["fusion"][tiny.name]["path"]
    assert json.loads(open(path).read())["gamma"] == written["gamma"]
    assert fused_service.info()["fusion"][tiny.name]["gamma"] == written["gamma"]


def test_no_base_is_one_line(tiny, fused_service):
    with pytest.raises(ConfigError, match="--base sasrec or --base echo\\+prior"):
        evaluate_fused(tiny, dummy(tiny), fused_service, FusionSettings(), "test", np.arange(3), np.arange(3))


def test_gamma_is_chosen_on_a_seeded_subset_of_validation_users(tiny):
    """``--gamma_users N``: the same N validation rows for every policy of a run (one seed), every row for 0."""
    n_valid = len(tiny.split("valid"))
    few = gamma_users(tiny, FusionSettings(base="echo+prior", gamma_users=3), seed=0)
    assert len(few) == 3 and list(few) == sorted(set(few.tolist())) and few.max() < n_valid
    assert np.array_equal(few, gamma_users(tiny, FusionSettings(base="echo+prior", gamma_users=3), seed=0))
    assert np.array_equal(gamma_users(tiny, FusionSettings(base="echo+prior", gamma_users=0), seed=0), np.arange(n_valid))
    with pytest.raises(ConfigError, match="gamma_users"):
        FusionSettings(gamma_users=-2)
