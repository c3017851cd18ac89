"""The retrieval service as a named actor on a real local Ray: lifecycle, contracts, bad calls, restarts."""

from __future__ import annotations

import uuid

import pytest
import ray
import torch

from rl4rec_core.errors import ConfigError, MissingArtifactError, Rl4recError
from rl4rec_core import metrics
from rl4rec_core.retrieval import RetrievalClient, get_retrieval_actor, launch_retrieval_actor, remove_retrieval_actor
from rl4rec_core.settings import RetrievalSettings
from rl4rec_core.retrieval.actor import RetrievalServiceNotFound
from tests.helpers.embeddings import data_dirs, random_items, write_embeddings

TEXTS = ["a funny animated movie", "a dark crime thriller", "space adventure"]
TARGETS = [3, 40, 299]
HISTORIES = [[1, 2, 3], [], [10, 11]]


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    """One actor holding two synthetic datasets, loaded from files in a temporary emb_dir."""
    root = tmp_path_factory.mktemp("retrieval")
    with data_dirs(root) as mp:
        # a user reward module the actor imports by dotted path (PYTHONPATH is forwarded to it)
        (root / "plugins").mkdir()
        (root / "plugins" / "actor_rewards.py").write_text(
            "def double_rr(*, ranks, **kwargs):\n    return 2.0 / ranks.float()\n"
        )
        mp.setenv("PYTHONPATH", str(root / "plugins"))
        write_embeddings("toy-a", random_items(300, seed=1))
        write_embeddings("toy-b", random_items(50, seed=2))
        name = f"TestRetrieval-{uuid.uuid4().hex[:6]}"
        actor = launch_retrieval_actor(
            RetrievalSettings(actor_name=name, emb_backend="sentence-transformers", chunk_size=64), ["toy-a", "toy-b"]
        )
        yield name, actor, mp
        remove_retrieval_actor(name)


def test_found_by_name_with_both_datasets(served):
    name, actor, _ = served
    found = get_retrieval_actor(name, namespace="rl4rec")
    client = RetrievalClient(found, name=name)
    assert client.ping() == "ok"
    assert client.datasets() == {"toy-a": (300, 384), "toy-b": (50, 384)}
    assert client.info()["device"] == "cpu"
    # the client can also find the actor itself
    assert RetrievalClient(name=name).datasets()["toy-b"] == (50, 384)


def test_call_contracts(served):
    name, actor, _ = served
    client = RetrievalClient(actor, name=name)
    scores = client.calculate_reward(TEXTS, "toy-a")
    assert scores.shape == (3, 300) and scores.dtype == torch.float32
    assert client.calculate_reward(TEXTS[:1], "toy-b").shape == (1, 50)
    # the in-actor path gives the ranks the client would compute from the full matrix
    out = client.compute_rewards(TEXTS, "toy-a", TARGETS, HISTORIES, reward="ndcg@20")
    expected = metrics.target_ranks(scores, torch.tensor(TARGETS), HISTORIES)
    assert out.ranks.tolist() == expected.tolist()
    assert out.rewards.shape == (3,) and out.rewards.dtype == torch.float32
    assert torch.allclose(out.rewards, metrics.ndcg_at_k(expected, 20))
    neg = client.compute_rewards(TEXTS, "toy-a", TARGETS, HISTORIES, reward="top5_diversity", num_negatives=9, seed=0)
    assert neg.rewards.shape == (3,) and ((neg.ranks >= 1) & (neg.ranks <= 10)).all()
    idx, s = client.top_k(TEXTS, "toy-a", k=5, histories=HISTORIES)
    assert idx.shape == (3, 5) and s.shape == (3, 5)
    assert torch.allclose(s, metrics.mask_history(scores, HISTORIES).topk(5).values, atol=1e-6)


def test_dotted_path_reward_runs_in_the_actor(served):
    name, actor, _ = served
    out = RetrievalClient(actor, name=name).compute_rewards(TEXTS, "toy-a", TARGETS, reward="actor_rewards:double_rr")
    assert torch.allclose(out.rewards, 2.0 / out.ranks.float())


@pytest.mark.parametrize(
    "method, args, kwargs, error, match",
    [
        ("calculate_reward", (TEXTS, "beauty"), {}, ValueError, r"unknown dataset 'beauty'.*\['toy-a', 'toy-b'\]"),
        ("calculate_reward", ([], "toy-a"), {}, ValueError, "empty"),
        ("calculate_reward", ([1, 2], "toy-a"), {}, ValueError, "strings"),
        ("compute_rewards", (TEXTS, "toy-b", [0, 1, 50]), {}, ValueError, "out of range"),
        ("compute_rewards", (TEXTS, "toy-a", TARGETS, [[1]]), {}, ValueError, "histories"),
        ("compute_rewards", (TEXTS, "toy-a", TARGETS), {"reward": "bleu"}, ConfigError, "known rewards"),
        ("top_k", (TEXTS, "toy-a"), {"k": 0}, ValueError, "positive integer"),
    ],
)
def test_bad_calls_leave_the_actor_serving(served, method, args, kwargs, error, match):
    name, actor, _ = served
    client = RetrievalClient(actor, name=name)
    with pytest.raises(error, match=match):
        getattr(client, method)(*args, **kwargs)
    assert client.compute_rewards(TEXTS[:1], "toy-b", [0]).ranks.shape == (1,)


def test_name_clashes_and_get_if_exists(served):
    name, actor, _ = served
    with pytest.raises(ConfigError, match="already runs"):
        launch_retrieval_actor(RetrievalSettings(actor_name=name), ["toy-a"])
    same = launch_retrieval_actor(RetrievalSettings(actor_name=name), ["toy-b"], get_if_exists=True)
    assert same._actor_id == actor._actor_id
    with pytest.raises(ConfigError, match="toy-c"):
        launch_retrieval_actor(RetrievalSettings(actor_name=name), ["toy-c"], get_if_exists=True)


def test_missing_actor_says_how_to_start_it(ray_local):
    with pytest.raises(RetrievalServiceNotFound) as e:
        get_retrieval_actor("NoSuchService", namespace="rl4rec")
    msg = str(e.value)
    assert "❌ Error: NoSuchService not found!" in msg
    assert "rl4rec serve" in msg and "rl4rec serve --status --namespace rl4rec" in msg


def test_failed_start_reports_the_cause(served):
    # no embedding file for this dataset: the constructor's error reaches the launcher
    with pytest.raises(MissingArtifactError, match="rl4rec embed --dataset missing-ds"):
        launch_retrieval_actor(RetrievalSettings(actor_name=f"Broken-{uuid.uuid4().hex[:6]}"), ["missing-ds"])


def test_restart_after_crash_then_clean_removal(served):
    name, actor, _ = served
    client = RetrievalClient(actor, name=name)
    before = client.compute_rewards(TEXTS, "toy-a", TARGETS, HISTORIES)
    ray.kill(actor, no_restart=False)  # a crash: Ray restarts it and __init__ reloads both datasets
    after = client.compute_rewards(TEXTS, "toy-a", TARGETS, HISTORIES)  # retried once, after the restart
    assert after.ranks.tolist() == before.ranks.tolist()
    assert client.datasets() == {"toy-a": (300, 384), "toy-b": (50, 384)}
    assert remove_retrieval_actor(name) is True
    with pytest.raises(RetrievalServiceNotFound):
        get_retrieval_actor(name)
    with pytest.raises(Rl4recError, match="did not come back"):
        client.ping()
    assert remove_retrieval_actor(name) is False


def test_find_returns_none_when_missing(ray_local):
    from rl4rec_core.retrieval import find_retrieval_actor

    assert find_retrieval_actor("NoSuchService", namespace="rl4rec") is None
