"""The reward path with the service's tensors on a device that is not the CPU, on a CPU-only machine.

The first GPU run failed with "Expected all tensors to be on the same device, cuda:0 and cpu" in
``scoring.history_pairs``. These tests run the service, evaluation and the trainer's reward step on
the pretend device of ``tests/helpers/pretend_device.py`` (``meta``, with real CPU values): any CPU
tensor meeting a device tensor raises ``DeviceMix``, the results must equal the plain CPU service's,
and everything handed back across the service boundary must be a CPU tensor.
"""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core import metrics
from rl4rec_core.evaluation import ranking
from rl4rec_core.retrieval import RetrievalService, scoring
from rl4rec_core.settings import RetrievalSettings
from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval
from tests.helpers.embeddings import random_items
from tests.helpers.pretend_device import PRETEND, DeviceMix, PretendDevice, on_device
from tests.helpers.tiny_recdata import WordVectorEncoder

TEXTS = ["a dark thriller", "a fun comedy for children", "romance and drama", "action heat"]
TARGETS = [3, 17, 0, 41]
HISTORIES = [[5, 3, 9], [1, 2], [], [41, 40, 7, 8]]  # a target inside its history stays unmasked
N, DIM = 60, 32
HYBRID = TunedRetrieval("toy", HybridWeights(beta=0.05, alpha=0.5, history_m=2), list(range(N)))


def make_service(device: str | torch.device, hybrid: bool = False) -> RetrievalService:
    # chunk_size 7: many chunks and a ragged last one, so every chunked path runs
    return RetrievalService(RetrievalSettings(emb_model_name=WordVectorEncoder.model_name, chunk_size=7, scorer="auto" if hybrid else "cosine"),
        encoder=WordVectorEncoder(DIM), embeddings={"toy": random_items(N, DIM)}, device=device,
        tuned={"toy": HYBRID} if hybrid else None)


def both(call, hybrid: bool = False):
    """``call(service)`` on the CPU and on the pretend device: ``(cpu result, device result)``."""
    expected = call(make_service("cpu", hybrid))
    with PretendDevice():
        service = make_service(PRETEND, hybrid)
        assert service.device == PRETEND and on_device(service._items["toy"])
        got = call(service)
    return expected, got


def assert_same_on_cpu(expected, got) -> None:
    for e, g in zip(expected, got):
        assert not on_device(g), "a result came back on the device; return .cpu() across the service boundary"
        if isinstance(e, torch.Tensor):
            torch.testing.assert_close(g, e)
        else:
            assert g == e


def rewards(**kw):
    def call(service):
        out = service.compute_rewards(TEXTS, "toy", TARGETS, HISTORIES, seed=3, **kw)
        return out.rewards, out.ranks, out.scorer
    return call


@pytest.mark.parametrize("hybrid", [False, True], ids=["cosine", "hybrid"])
@pytest.mark.parametrize("kw", [
    {"reward": "ndcg@10"},  # ranks only: chunked_ranks, no score matrix
    {"reward": "top5_diversity"},  # needs scores: full_scores + ranks_from_scores
    {"reward": "mrr", "num_negatives": 6},  # sampled negatives
], ids=["ranks", "scores", "negatives"])
def test_compute_rewards_on_a_device_equals_the_cpu(kw, hybrid):
    assert_same_on_cpu(*both(rewards(**kw), hybrid))


@pytest.mark.parametrize("hybrid", [False, True], ids=["cosine", "hybrid"])
def test_top_k_and_score_matrix_on_a_device_equal_the_cpu(hybrid):
    def call(service):
        idx, s = service.top_k(TEXTS, "toy", k=5, histories=HISTORIES)
        return idx, s, service.calculate_reward(TEXTS, "toy", hybrid=hybrid, histories=HISTORIES)

    assert_same_on_cpu(*both(call, hybrid))


def test_the_original_bug_is_caught(monkeypatch):
    """``history_pairs`` as it was before the ``.cpu()`` fix: the device test must fail on it."""

    def old_history_pairs(histories, targets=None):
        lengths = torch.tensor([len(h) for h in histories], dtype=torch.long)
        rows = torch.repeat_interleave(torch.arange(len(histories)), lengths)
        cols = torch.tensor([int(i) for h in histories for i in h], dtype=torch.long)
        if targets is not None and len(cols):
            keep = cols != targets[rows]
            rows, cols = rows[keep], cols[keep]
        return rows, cols

    monkeypatch.setattr(scoring, "history_pairs", old_history_pairs)
    with pytest.raises(DeviceMix):
        both(rewards(reward="ndcg@10"))


def test_evaluation_ranks_device_scores_and_returns_cpu_ranks():
    scores = random_items(len(TARGETS), N, seed=1)  # any [users, items] matrix
    split = type("Split", (), {"targets": torch.tensor(TARGETS), "histories": HISTORIES})()
    expected = ranking.split_ranks(scores, split, batch_size=3)

    class DeviceScorer:  # a scorer that runs on the device, as a GPU baseline would
        num_items = N

        def score(self, histories):
            start = HISTORIES.index(histories[0])
            return scores[start:start + len(histories)].to(PRETEND)

    with PretendDevice():
        direct = metrics.target_ranks(scores.to(PRETEND), torch.tensor(TARGETS), HISTORIES)
        batched = ranking.split_ranks(DeviceScorer(), split, batch_size=3)
        summary = ranking.evaluate_scores(DeviceScorer(), split, batch_size=3)
    assert on_device(direct) and not on_device(batched)
    torch.testing.assert_close(direct.cpu(), expected)
    torch.testing.assert_close(batched, expected)
    assert summary == ranking.evaluate_scores(scores, split)


def test_policy_evaluation_and_a_training_step_with_a_device_service(tiny):
    """``evaluate_policy`` and the trainer's reward step against a service on the device (dummy policy)."""
    from rl4rec_core.evaluation.policy_eval import evaluate_policy, select_users
    from rl4rec_core.policy.registry import build_policy
    from rl4rec_core.settings import Settings
    from rl4rec_core.training.trainer import RLTrainer
    from tests.helpers.tiny_recdata import make_service as tiny_service

    cfg = Settings.of(dataset_name=tiny.name, policy="dummy", batch_size=8, group_size=4, reward="ndcg@10")
    cpu = tiny_service(tiny, WordVectorEncoder())
    users = select_users(len(tiny.split("valid")), 10)
    expected, expected_ranks = evaluate_policy(tiny, build_policy(cfg, tiny), service=cpu, users=users)
    with PretendDevice():
        service = RetrievalService(RetrievalSettings(emb_model_name=cpu.emb_model_name), encoder=cpu.encoder,
                                   embeddings={tiny.name: cpu._items[tiny.name].cpu().clone()}, device=PRETEND)
        got, ranks = evaluate_policy(tiny, build_policy(cfg, tiny), service=service, users=users)
        trainer = RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False)
        stats = trainer.train_step()
    assert got == expected and not on_device(ranks)
    torch.testing.assert_close(ranks, expected_ranks)
    assert torch.isfinite(torch.tensor([stats["avg_reward"], stats["loss"], stats["mean_rank"]])).all()


def test_the_service_device_is_checked_before_loading(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    assert make_service("auto").device == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available.*--device cpu"):
        RetrievalService(RetrievalSettings(), ["no-such-dataset"], device="cuda")  # before any file is looked for
