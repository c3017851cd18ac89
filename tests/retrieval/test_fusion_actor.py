"""The fused scorer through the real Ray actor: launched with the fusion settings, its echo+prior base read from
the tuned file beside the embeddings, rewards, candidates and gamma tuning over the client."""

from __future__ import annotations

import uuid

import pytest
import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError
from rl4rec_core.retrieval import RetrievalClient, launch_retrieval_actor, remove_retrieval_actor
from rl4rec_core.retrieval.base_channel import EchoPriorBase
from rl4rec_core.retrieval.fusion import fused_scores, history_mask
from rl4rec_core.retrieval.fusion_tuning import fusion_path, read_fusion_record, tune_gamma
from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval, save_tuned, settings_path
from rl4rec_core.settings import FusionSettings, RetrievalSettings
from tests.helpers.embeddings import MODEL, data_dirs, random_items, write_embeddings

TEXTS = ["a funny animated movie", "a dark crime thriller", "space adventure", "a love story"]
TARGETS = [3, 40, 199, 7]
HISTORIES = [[1, 2, 3], [], [10, 11], [7, 8, 9, 12]]  # the first and last hold their own target
N = 200
COUNTS = [(7 * i) % 23 for i in range(N)]
WEIGHTS = HybridWeights(beta=0.05, history_m=2)


@pytest.fixture(scope="module")
def fused_actor(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("fused")
    with data_dirs(root):
        write_embeddings("toy-f", random_items(N, seed=3))
        save_tuned(settings_path("toy-f", "item", MODEL), TunedRetrieval("toy-f", WEIGHTS, COUNTS), MODEL, "item")
        name = f"TestFused-{uuid.uuid4().hex[:6]}"
        retrieval = RetrievalSettings(actor_name=name, emb_backend="sentence-transformers", chunk_size=64,
                                      scorer="cosine")  # the text channel is cosine; the base still reads the file
        actor = launch_retrieval_actor(retrieval, ["toy-f"], fusion=FusionSettings(base="echo+prior", num_candidates=5))
        yield RetrievalClient(actor, name=name), root
        remove_retrieval_actor(name)


def expected_matrix(client, gamma):
    cos = client.calculate_reward(TEXTS, "toy-f")  # plain cosine of each text to every item
    base = EchoPriorBase(random_items(N, seed=3), COUNTS, WEIGHTS.beta, WEIGHTS.history_m)
    return base, fused_scores(base.score(HISTORIES), cos, gamma, exclude=history_mask(HISTORIES, N))


def test_fused_rewards_and_candidates_through_the_actor(fused_actor):
    client, _ = fused_actor
    info = client.info()
    assert info["fusion"]["toy-f"]["base_record"]["beta"] == WEIGHTS.beta
    assert info["scoring"]["toy-f"]["fusion_base"]["history_m"] == WEIGHTS.history_m
    base, matrix = expected_matrix(client, 1.5)
    out = client.compute_rewards(TEXTS, "toy-f", TARGETS, HISTORIES, reward="ndcg@10", scorer="fused", gamma=1.5)
    expected = metrics.target_ranks(matrix, torch.tensor(TARGETS), HISTORIES)
    assert out.ranks.tolist() == expected.tolist()
    assert torch.allclose(out.rewards, metrics.ndcg_at_k(expected, 10))
    alone = metrics.target_ranks(base.score(HISTORIES), torch.tensor(TARGETS), HISTORIES)
    assert out.base_ranks.tolist() == alone.tolist()
    assert out.scorer == "fused(base=echo+prior, gamma=1.5)"
    # the prompt's candidates: the base's top 5 (the settings' K), history masked
    cands = client.candidates("toy-f", HISTORIES)
    masked = base.score(HISTORIES).masked_fill(history_mask(HISTORIES, N), float("-inf"))
    assert cands.tolist() == masked.sort(dim=1, descending=True, stable=True).indices[:, :5].tolist()
    idx, _ = client.top_k(TEXTS, "toy-f", k=4, histories=HISTORIES, scorer="fused", gamma=1.5)
    assert idx.shape == (4, 4)
    # a refused call is one line and the actor keeps serving
    with pytest.raises(ValueError, match="needs histories"):
        client.compute_rewards(TEXTS, "toy-f", TARGETS, scorer="fused")
    assert client.ping() == "ok"


def test_tune_gamma_over_the_client_writes_the_record(fused_actor):
    client, root = fused_actor
    with data_dirs(root):
        record = tune_gamma(client, "toy-f", TEXTS, TARGETS, HISTORIES, grid=(0.0, 1.0, 4.0), batch_size=3)
        saved, _ = read_fusion_record(fusion_path("toy-f", "item", MODEL))
    assert saved["gamma"] == record["gamma"] and len(saved["validation"]["by_gamma"]) == 3
    assert client.info()["fusion"]["toy-f"]["gamma"] == record["gamma"]
    assert client.info()["fusion"]["toy-f"]["gamma_source"] == "tuned"


def test_a_running_actor_is_reused_only_with_the_same_base(fused_actor):
    client, root = fused_actor
    retrieval = RetrievalSettings(actor_name=client.name, emb_backend="sentence-transformers", scorer="cosine")
    with data_dirs(root):
        same = launch_retrieval_actor(retrieval, ["toy-f"], fusion=FusionSettings(base="echo+prior"), get_if_exists=True)
        assert RetrievalClient(same, name=client.name).ping() == "ok"
        with pytest.raises(ConfigError, match="without the base 'sasrec'") as e:
            launch_retrieval_actor(retrieval, ["toy-f"], fusion=FusionSettings(base="sasrec"), get_if_exists=True)
    assert "\n" not in str(e.value)
