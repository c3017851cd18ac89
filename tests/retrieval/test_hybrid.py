"""The hybrid scorer: hand-computed scores and ranks, fusion, ties, masking, no leakage, tuning, bad settings."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from rl4rec_core.cli import main
from rl4rec_core.data import Split, load_dataset
from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.evaluation.baselines import EchoPriorBaseline
from rl4rec_core.evaluation.ranking import evaluate_scores
from rl4rec_core.retrieval import RetrievalService
from rl4rec_core.settings import RetrievalSettings
from rl4rec_core.retrieval.hybrid import (
    HybridWeights,
    TunedRetrieval,
    load_tuned,
    save_tuned,
    settings_path,
    train_counts,
)
from rl4rec_core.retrieval.tuning import tune_prior
from tests.helpers.embeddings import write_embeddings
from tests.helpers.tiny_recdata import write_tiny_dataset

# three items in 2-D; item 3 duplicates item 2 (same vector, same count) to make an exact tie
ITEMS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.6, 0.8]])
COUNTS = [0, 1, 3, 3]  # log1p: 0, ln 2 = 0.693147, ln 4 = 1.386294, ln 4
BETA = 0.1


class LookupEncoder:
    """Fixed vectors for fixed texts: makes every score computable by hand."""

    model_name = short_name = "lookup"
    backend = "test"
    dim = 2
    VECTORS = {"east": [1.0, 0.0], "north": [0.0, 1.0]}

    def encode(self, texts, batch_size=64, progress=False):
        return torch.tensor([self.VECTORS[t] for t in texts])


def make(beta=BETA, alpha=0.0, m=1, scorer="auto"):
    tuned = TunedRetrieval("hand", HybridWeights(beta=beta, alpha=alpha, history_m=m), COUNTS)
    return RetrievalService(RetrievalSettings(emb_model_name="lookup", scorer=scorer), encoder=LookupEncoder(),
        embeddings={"hand": ITEMS.clone()}, tuned={"hand": tuned})


def test_hybrid_scores_are_cosine_plus_beta_log1p_count():
    svc = make()
    # "east" = (1, 0): cos = [1, 0, 0.6, 0.6]; + 0.1 * [0, ln 2, ln 4, ln 4]
    expected = torch.tensor([[1.0, 0.0693147, 0.7386294, 0.7386294]])
    assert torch.allclose(svc.calculate_reward(["east"], "hand", hybrid=True), expected, atol=1e-6)
    # the original's contract stays plain cosine
    assert torch.allclose(svc.calculate_reward(["east"], "hand"), torch.tensor([[1.0, 0.0, 0.6, 0.6]]))
    assert svc.scorer("hand") == "hybrid(beta=0.1, alpha=0, m=1)"


def test_ranks_ties_and_masking_follow_the_hybrid_scores():
    svc = make()
    # east: item 0 (1.0) > item 2 = item 3 (0.7386) > item 1 (0.0693)
    out = svc.compute_rewards(["east"] * 4, "hand", targets=[0, 2, 3, 1], reward="mrr")
    # ties are pessimistic: items 2 and 3 both rank 3
    assert out.ranks.tolist() == [1, 3, 3, 4]
    assert out.scorer == "hybrid(beta=0.1, alpha=0, m=1)"
    # item 0 in the history is masked, the target never is
    out = svc.compute_rewards(["east"] * 2, "hand", targets=[2, 0], histories=[[0], [0]], reward="mrr")
    assert out.ranks.tolist() == [2, 1]
    # the chunked path (no score matrix) agrees, with a chunk smaller than the catalogue
    svc.chunk_size = 3
    assert svc.compute_rewards(["east"] * 4, "hand", targets=[0, 2, 3, 1], reward="log_rank").ranks.tolist() == [1, 3, 3, 4]
    # cosine alone ranks item 1 (cos 0) last too, but items 2/3 at 0.6 behind item 0: same order here;
    # "north" separates them: cos [0, 1, .8, .8] vs hybrid [0, 1.0693, .9386, .9386]
    cos = svc.compute_rewards(["north"], "hand", targets=[2], scorer="cosine", reward="mrr")
    assert cos.ranks.tolist() == [3] and cos.scorer == "cosine"


def test_query_fusion_adds_alpha_times_the_recent_items():
    svc = make(alpha=1.0, m=1)
    # q = normalize(east + 1 * item 1) = (0.7071, 0.7071); cos = [.7071, .7071, .98995, .98995]
    r = 1 / math.sqrt(2)
    cos = torch.tensor([r, r, 1.4 * r, 1.4 * r])
    prior = torch.tensor([0.0, math.log(2), math.log(4), math.log(4)])
    got = svc.calculate_reward(["east"], "hand", hybrid=True, histories=[[1]])
    assert torch.allclose(got, (cos + BETA * prior)[None], atol=1e-6)
    # history [1] masked: item 2 (1.1286) first, item 0 (0.7071) third behind item 3
    assert svc.compute_rewards(["east"], "hand", targets=[0], histories=[[1]], reward="mrr").ranks.tolist() == [3]
    idx, _ = svc.top_k(["east"], "hand", k=2, histories=[[1]])
    assert sorted(idx[0].tolist()) == [2, 3]


def test_service_loads_the_settings_file_and_hybrid_requires_it(rl4rec_dirs):
    write_embeddings("hand", ITEMS.clone(), model="lookup")
    with pytest.raises(MissingArtifactError, match="tune-retrieval --dataset_name hand"):
        RetrievalService(RetrievalSettings(emb_model_name="lookup", scorer="hybrid"), ["hand"], encoder=LookupEncoder())
    plain = RetrievalService(RetrievalSettings(emb_model_name="lookup"), ["hand"], encoder=LookupEncoder())
    assert plain.scorer("hand") == "cosine"
    with pytest.raises(ValueError, match="tune-retrieval"):
        plain.compute_rewards(["east"], "hand", targets=[0], scorer="hybrid")
    tuned = TunedRetrieval("hand", HybridWeights(beta=BETA, history_m=2), COUNTS, {"note": "hand"})
    save_tuned(settings_path("hand", "item", "lookup"), tuned, "lookup", "item")
    svc = RetrievalService(RetrievalSettings(emb_model_name="lookup"), ["hand"], encoder=LookupEncoder())
    assert svc.scorer("hand") == "hybrid(beta=0.1, alpha=0, m=2)"
    assert svc.info()["scorers"] == {"hand": "hybrid(beta=0.1, alpha=0, m=2)"}
    assert load_tuned("hand", "item", "lookup").validation == {"note": "hand"}


def test_bad_settings_give_clear_errors(rl4rec_dirs):
    with pytest.raises(ConfigError, match="beta must be a number >= 0"):
        HybridWeights(beta=-0.1)
    with pytest.raises(ConfigError, match="history_m must be an integer >= 1"):
        HybridWeights(history_m=0)
    with pytest.raises(ConfigError, match="alpha"):
        HybridWeights(alpha=float("nan"))
    with pytest.raises(MissingArtifactError, match="rl4rec tune-retrieval --dataset_name nowhere"):
        load_tuned("nowhere", "item", "lookup")
    path = settings_path("hand", "item", "lookup")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"dataset": "hand", "settings": {"beta": -1}, "prior_counts": [0, 1, 3, 3]}')
    with pytest.raises(Exception, match="invalid settings.*beta must be"):
        load_tuned("hand", "item", "lookup")
    with pytest.raises(ConfigError, match="unknown scorer"):
        RetrievalService(RetrievalSettings(emb_model_name="lookup", scorer="bm25"), encoder=LookupEncoder(),
            embeddings={"hand": ITEMS.clone()})


def test_the_prior_counts_training_histories_only(rl4rec_dirs):
    ds = load_dataset(write_tiny_dataset(rl4rec_dirs["data"], "leak"))
    before = train_counts(ds.train_histories(), ds.num_items)
    # move every user's test and validation targets to item 0: the prior must not notice
    seqs = pd.read_parquet(ds.folder / "sequences.parquet")
    seqs["items"] = [list(s[:-2]) + [0, 0] for s in seqs["items"]]
    seqs.to_parquet(ds.folder / "sequences.parquet", index=False)
    changed = load_dataset("leak")
    assert changed.split("test").targets.tolist() != ds.split("test").targets.tolist()
    assert train_counts(changed.train_histories(), changed.num_items) == before


def test_tuning_picks_the_best_grid_point_and_echo_prior_reproduces_it():
    # 6 items on a circle; targets are the two most popular items, which the echo query cannot find
    angles = torch.arange(6) * (2 * math.pi / 6)
    items = torch.stack([angles.cos(), angles.sin()], dim=1)
    counts = [50, 40, 1, 1, 1, 1]
    prior = torch.log1p(torch.tensor(counts, dtype=torch.float32))
    histories = [[3], [3, 4], [2], [5, 3]]
    valid = Split("valid", torch.arange(4), histories, torch.tensor([0, 1, 0, 1]))
    best, grid = tune_prior(items, prior, valid, betas=(0.0, 0.5), ms=(1, 2))
    assert len(grid) == 4
    assert best.metrics["ndcg@10"] == max(p.metrics["ndcg@10"] for p in grid)
    assert best.settings.beta == 0.5  # the prior is what finds these targets
    baseline = EchoPriorBaseline(items, TunedRetrieval("circle", best.settings, counts))
    assert evaluate_scores(baseline, valid, ks=(10,))["ndcg@10"] == pytest.approx(best.metrics["ndcg@10"])


def test_tune_retrieval_cli_writes_settings_and_rejects_bad_grids(rl4rec_dirs, capsys):
    from tests.helpers.tiny_recdata import WordVectorEncoder

    ds = load_dataset(write_tiny_dataset(rl4rec_dirs["data"], "tune"))
    write_embeddings("tune", WordVectorEncoder().encode(ds.item_texts()), model="lookup")
    assert main(["tune-retrieval", "--dataset", "tune", "--emb_model", "lookup", "--betas", "0", "0.1",
                 "--ms", "1", "3"]) == 0
    tuned = load_tuned("tune", "item", "lookup", num_items=ds.num_items)
    assert tuned.prior_counts == train_counts(ds.train_histories(), ds.num_items)
    assert tuned.validation["split"] == "valid" and len(tuned.validation["grid"]) == 4
    assert "scorer: hybrid" in capsys.readouterr().out or tuned.settings.scorer == "cosine"
    assert main(["tune-retrieval", "--dataset", "tune", "--emb_model", "lookup", "--betas", "-1"]) == 2
    assert "beta grid must be" in capsys.readouterr().err
