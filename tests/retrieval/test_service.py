"""The plain RetrievalService (no Ray): contracts, chunking, masking, negatives, loading checks, bad calls."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from rl4rec_core.embeddings.encoders import make_encoder
from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core import metrics
from rl4rec_core.retrieval import RetrievalService, RewardBatch
from rl4rec_core.settings import RetrievalSettings
from tests.helpers.embeddings import random_items, write_embeddings

ITEM_TEXTS = [
    "Apollo 13 (1995). Genres: Adventure, Drama",
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "Scream (1996). Genres: Horror, Thriller",
    "Sleepless in Seattle (1993). Genres: Comedy, Romance",
    "Heat (1995). Genres: Action, Crime, Thriller",
    "Babe (1995). Genres: Children's, Comedy, Drama",
    "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War",
    "Fargo (1996). Genres: Crime, Drama, Thriller",
]
QUERIES = [
    "an animated film about toys for children",
    "a scary horror slasher film",
    "astronauts in trouble on a mission to the moon",
    "a romantic comedy",
]
TARGETS = [1, 2, 0, 150]
HISTORIES = [[5, 3, 1], [4, 7], [], [0, 150, 201]]  # the target inside a history must stay unmasked


class CachedEncoder:
    """The real MiniLM encoder, remembering texts it has embedded (the tests re-send the same few)."""

    def __init__(self, inner):
        self.inner, self.cache = inner, {}
        self.model_name, self.short_name, self.dim, self.backend = inner.model_name, inner.short_name, inner.dim, inner.backend

    def encode(self, texts, batch_size=64, progress=False):
        new = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if new:
            self.cache.update(zip(new, self.inner.encode(new)))
        return torch.stack([self.cache[t] for t in texts])


@pytest.fixture(scope="module")
def encoder():
    return CachedEncoder(make_encoder("all-MiniLM-L6-v2", backend="sentence-transformers"))


@pytest.fixture(scope="module")
def catalogue(encoder):
    """8 real movie texts + 200 random rows: ``[208, 384]``."""
    return torch.cat([encoder.encode(ITEM_TEXTS), random_items(200)])


@pytest.fixture(scope="module")
def service(encoder, catalogue):
    # chunk_size 7 forces many chunks, including a ragged last one
    return RetrievalService(RetrievalSettings(chunk_size=7), encoder=encoder, embeddings={"movies": catalogue.clone()})


def test_calculate_reward_is_cosine_over_all_items(service, encoder, catalogue):
    scores = service.calculate_reward(QUERIES, "movies")
    assert scores.shape == (4, 208) and scores.dtype == torch.float32
    assert torch.allclose(scores, encoder.encode(QUERIES) @ catalogue.T, atol=1e-5)
    assert service.datasets() == {"movies": (208, 384)}
    assert service.ping() == "ok"


def test_top_k_finds_the_matching_movie(service):
    idx, s = service.top_k(QUERIES, "movies", k=3)
    assert idx.shape == (4, 3) and s.shape == (4, 3)
    assert idx[:, 0].tolist()[:3] == [1, 2, 0]  # Toy Story, Scream, Apollo 13
    assert (s[:, :-1] >= s[:, 1:]).all()  # best first
    # history masking removes those items from the list
    masked, _ = service.top_k(QUERIES, "movies", k=3, histories=[[1], [2], [0], []])
    assert 1 not in masked[0] and 2 not in masked[1] and 0 not in masked[2]


def test_top_k_matches_full_sort(service):
    full = metrics.mask_history(service.calculate_reward(QUERIES, "movies"), HISTORIES)
    idx, s = service.top_k(QUERIES, "movies", k=20, histories=HISTORIES)
    assert torch.allclose(s, full.topk(20).values, atol=1e-6)


@pytest.mark.parametrize("reward", ["ndcg@10", "hit@3", "mrr", "mixed", "top5_diversity"])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_in_service_ranks_equal_full_matrix_ranks(encoder, catalogue, reward, chunk):
    svc = RetrievalService(RetrievalSettings(chunk_size=chunk), encoder=encoder,
        embeddings={"movies": catalogue.clone()})
    expected = metrics.target_ranks(svc.calculate_reward(QUERIES, "movies"), torch.tensor(TARGETS), HISTORIES)
    out = svc.compute_rewards(QUERIES, "movies", TARGETS, HISTORIES, reward=reward)
    assert isinstance(out, RewardBatch)
    assert out.ranks.tolist() == expected.tolist()
    assert out.rewards.shape == (4,) and out.rewards.dtype == torch.float32
    assert out.ranks[:3].tolist() == [1, 1, 1]  # the three real matches rank first
    if reward == "ndcg@10":
        assert torch.allclose(out.rewards, metrics.ndcg_at_k(expected, 10))


def test_sampled_negatives(service):
    a = service.compute_rewards(QUERIES, "movies", TARGETS, HISTORIES, reward="mrr", num_negatives=20, seed=3)
    b = service.compute_rewards(QUERIES, "movies", TARGETS, HISTORIES, reward="mrr", num_negatives=20, seed=3)
    assert a.ranks.tolist() == b.ranks.tolist()  # reproducible with a seed
    assert ((a.ranks >= 1) & (a.ranks <= 21)).all()
    # with every item outside the history as a negative, the rank is the full-catalogue rank
    full = service.compute_rewards(QUERIES, "movies", TARGETS, HISTORIES, reward="mrr")
    every = [208 - len(set(h) - {t}) - 1 for h, t in zip(HISTORIES, TARGETS)]
    for row in range(4):
        one = service.compute_rewards(
            [QUERIES[row]], "movies", [TARGETS[row]], [HISTORIES[row]], reward="mrr", num_negatives=every[row], seed=0
        )
        assert one.ranks.item() == full.ranks[row].item()
    with pytest.raises(ValueError, match="cannot sample"):
        service.compute_rewards(QUERIES[:1], "movies", [1], [[2]], num_negatives=207)


def test_reward_kwargs_and_dotted_user_reward(service, tmp_path, monkeypatch):
    (tmp_path / "svc_rewards.py").write_text(
        "def closeness(*, scores, target_columns, texts, bonus=0.0, **kwargs):\n"
        "    # the target's own cosine score plus a bonus\n"
        "    return scores.gather(1, target_columns[:, None]).squeeze(1) + bonus\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = service.compute_rewards(QUERIES, "movies", TARGETS, reward="svc_rewards:closeness", bonus=1.0)
    cos = service.calculate_reward(QUERIES, "movies").gather(1, torch.tensor(TARGETS)[:, None]).squeeze(1)
    assert torch.allclose(out.rewards, cos + 1.0, atol=1e-5)
    # with sampled negatives the target sits in column 0 and the same function still reads its score
    neg = service.compute_rewards(QUERIES, "movies", TARGETS, reward="svc_rewards:closeness", num_negatives=5, seed=0)
    assert torch.allclose(neg.rewards, cos + 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="reserved"):
        service.compute_rewards(QUERIES, "movies", TARGETS, reward="mrr", num_items=5)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda s: s.calculate_reward(["x"], "beauty"), ValueError, r"unknown dataset 'beauty'.*\['movies'\]"),
        (lambda s: s.calculate_reward([], "movies"), ValueError, "empty"),
        (lambda s: s.calculate_reward("just one", "movies"), ValueError, "single string"),
        (lambda s: s.calculate_reward(["ok", 3], "movies"), ValueError, "item 1 is int"),
        (lambda s: s.compute_rewards(["x"], "movies", [208]), ValueError, "out of range"),
        (lambda s: s.compute_rewards(["x"], "movies", [-1]), ValueError, "out of range"),
        (lambda s: s.compute_rewards(["x", "y"], "movies", [1]), ValueError, "one item index per text"),
        (lambda s: s.compute_rewards(["x"], "movies", [1.5]), ValueError, "integer"),
        (lambda s: s.compute_rewards(["x"], "movies", [1], [[2], [3]]), ValueError, "2 histories for 1 texts"),
        (lambda s: s.compute_rewards(["x"], "movies", [1], [[999]]), ValueError, "history item index out of range"),
        (lambda s: s.compute_rewards(["x"], "movies", [1], reward="bleu"), ConfigError, "known rewards"),
        (lambda s: s.compute_rewards(["x"], "movies", [1], num_negatives=-1), ValueError, "num_negatives"),
        (lambda s: s.top_k(["x"], "movies", k=0), ValueError, "positive integer"),
        (lambda s: s.top_k(["x"], "movies", k=209), ValueError, "more than the 208 items"),
        (lambda s: s.top_k(["x"], "movies", k=1, histories=[]), ValueError, "0 histories for 1 texts"),
    ],
)
def test_bad_calls_raise_and_leave_the_service_usable(service, call, error, match):
    with pytest.raises(error, match=match):
        call(service)
    assert service.compute_rewards(QUERIES[:1], "movies", [1]).ranks.tolist() == [1]


def test_loads_validated_files_from_emb_dir(rl4rec_dirs, encoder, catalogue):
    write_embeddings("movies", catalogue)
    write_embeddings("other", random_items(30, seed=1))
    svc = RetrievalService(RetrievalSettings(emb_model_name="all-MiniLM-L6-v2"), ["movies", "other"], encoder=encoder)
    assert svc.datasets() == {"movies": (208, 384), "other": (30, 384)}
    assert svc.top_k(QUERIES[:1], "movies", k=1)[0].item() == 1
    # the row count must match the prepared dataset when it is present
    (rl4rec_dirs["data"] / "other").mkdir(parents=True)
    pd.DataFrame({"item_idx": range(31), "title": ["t"] * 31}).to_parquet(rl4rec_dirs["data"] / "other" / "items.parquet")
    with pytest.raises(DataError, match="31 items"):
        RetrievalService(RetrievalSettings(), ["other"], encoder=encoder)


def test_refuses_mismatched_embeddings(rl4rec_dirs, encoder):
    with pytest.raises(MissingArtifactError, match="rl4rec embed --dataset nothing"):
        RetrievalService(RetrievalSettings(), ["nothing"], encoder=encoder)
    write_embeddings("small", random_items(10, dim=64))
    with pytest.raises(DataError, match=r"small_item_all-MiniLM-L6-v2.pt has dimension 64 but 384 was expected.*--force"):
        RetrievalService(RetrievalSettings(), ["small"], encoder=encoder)
    bad = random_items(10)
    bad[3, 5] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        RetrievalService(RetrievalSettings(), encoder=encoder, embeddings={"bad": bad})
    with pytest.raises(DataError, match="float32"):
        RetrievalService(RetrievalSettings(), encoder=encoder, embeddings={"f64": random_items(10).double()})
    with pytest.raises(ConfigError, match="chunk_size"):
        RetrievalService(RetrievalSettings(chunk_size=0), encoder=encoder, embeddings={"x": random_items(10)})


def test_refuses_embeddings_of_another_model(rl4rec_dirs, encoder):
    # a file made by another model under the name the service asks for: the encoder check catches it
    write_embeddings("movies", random_items(10), model="mixedbread-ai/mxbai-embed-large-v1")
    with pytest.raises(DataError, match="mxbai"):
        RetrievalService(RetrievalSettings(emb_model_name="mixedbread-ai/mxbai-embed-large-v1"), ["movies"],
            encoder=encoder)


@pytest.mark.parametrize("chunk", [97, 4096, 50_000])
def test_chunked_ranks_equal_full_ranks_with_exact_ties(chunk):
    from rl4rec_core.retrieval import scoring

    g = torch.Generator().manual_seed(0)
    items = random_items(20_000, dim=64, seed=4)
    items[5] = items[7]
    items[19_999] = items[7]  # two exact duplicates of item 7, in other chunks
    q = torch.nn.functional.normalize(torch.randn(8, 64, generator=g), dim=1)
    q[0] = items[7]
    targets = torch.randint(20_000, (8,), generator=g)
    targets[0] = 7
    histories = [torch.randint(20_000, (30,), generator=g).tolist() for _ in range(8)]
    expected = metrics.target_ranks(q @ items.T, targets, histories)
    got = scoring.chunked_ranks(q, items, targets, chunk, histories)
    assert got.tolist() == expected.tolist()
    assert got[0].item() == 3  # pessimistic: both duplicates count as ahead of the target
