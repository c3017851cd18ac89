"""The GPU path end to end, on a machine with CUDA: ``pytest -m gpu tests/gpu`` (skipped without a GPU).

A tiny random Llama policy and a retrieval service, both on CUDA: two GRPO steps through
``build_trainer`` (bfloat16 weights by default, finite rewards, CPU tensors back from the service),
the same rewards as a CPU service, evaluation of the trained policy, and ``rl4rec embed`` /
``rl4rec evaluate`` with ``--device cuda``. On CPU-only machines ``tests/retrieval/test_devices.py``
guards the same code against device mixes.
"""

from __future__ import annotations

import math

import pytest
import torch

from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval
from tests.helpers.tiny_recdata import WordVectorEncoder, make_service

DEVICE = "cuda"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def settings(tiny, tiny_lm, tmp_path, **kw):
    from rl4rec_core.settings import Settings

    return Settings.of(**{"dataset_name": tiny.name, "device": DEVICE, "policy_model": tiny_lm, "num_steps": 2,
                          "batch_size": 8, "group_size": 4, "max_new_tokens": 8, "learning_rate": 1e-2,
                          "save_every": 1, "checkpoint_dir": str(tmp_path / "run"), **kw})


def test_two_training_steps_and_evaluation_on_cuda(tiny, tiny_lm, tmp_path):
    from rl4rec_core.evaluation.policy_eval import evaluate_policy
    from rl4rec_core.training.trainer import build_trainer

    service = make_service(tiny, WordVectorEncoder(), device=DEVICE)
    assert service.device.type == DEVICE and service._items[tiny.name].device.type == DEVICE
    trainer = build_trainer(settings(tiny, tiny_lm, tmp_path), service, dataset=tiny, progress=False)
    model = trainer.policy.model
    assert {p.device.type for p in model.parameters()} == {DEVICE}
    # dtype "auto": bfloat16 on CUDA (LoRA adapters may be kept in float32 by peft; the base is what counts)
    assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}

    rewards, ranks = trainer.compute_rewards(["a comedy"] * 8, trainer.sample_users()[:2])
    assert rewards.device.type == ranks.device.type == "cpu" and torch.isfinite(rewards).all()
    summary = trainer.train()
    records = trainer.log.read()
    assert summary["steps"] == 2 and [r["step"] for r in records] == [0, 1]
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("avg_reward", "min_reward", "max_reward", "loss", "mean_rank"))

    metrics, user_ranks = evaluate_policy(tiny, trainer.policy, service=service, users=range(5))
    assert len(user_ranks) == 5 and user_ranks.device.type == "cpu" and 0 <= metrics["ndcg@10"] <= 1
    # the saved run, rebuilt on the GPU from its folder (equality with the in-memory policy is checked on the
    # CPU in tests/training; bfloat16 greedy decoding on a GPU may break a near-tie differently)
    again, again_ranks = evaluate_policy(tiny, tmp_path / "run", service=service, users=range(5), device=DEVICE)
    assert len(again_ranks) == 5 and again_ranks.device.type == "cpu" and 0 <= again["ndcg@10"] <= 1


@pytest.mark.parametrize("kw", [{"reward": "ndcg@10"}, {"reward": "top5_diversity"},
                                {"reward": "mrr", "num_negatives": 5, "seed": 1}], ids=["ranks", "scores", "negatives"])
def test_cuda_rewards_equal_the_cpu(tiny, kw):
    tuned = TunedRetrieval(tiny.name, HybridWeights(beta=0.05, alpha=0.5, history_m=2), [3] * tiny.num_items)
    cpu, gpu = (make_service(tiny, WordVectorEncoder(), device=d, tuned={tiny.name: tuned}) for d in ("cpu", DEVICE))
    split = tiny.split("valid")
    texts = ["a dark thriller", "a comedy for children", "romance", "heat"]
    args = (texts, tiny.name, [int(t) for t in split.targets[:4]], [list(map(int, h)) for h in split.histories[:4]])
    want, got = cpu.compute_rewards(*args, **kw), gpu.compute_rewards(*args, **kw)
    assert got.rewards.device.type == got.ranks.device.type == "cpu"
    torch.testing.assert_close(got.rewards, want.rewards, atol=1e-4, rtol=1e-4)
    assert torch.equal(got.ranks, want.ranks)  # random-ish vectors: no near-ties for float rounding to flip
    idx, s = gpu.top_k(texts, tiny.name, k=5, histories=args[3])
    assert idx.device.type == s.device.type == "cpu" and torch.equal(idx, cpu.top_k(texts, tiny.name, k=5, histories=args[3])[0])


def test_embed_and_evaluate_commands_on_cuda(tiny, tiny_lm, tmp_path, rl4rec_dirs, capsys):
    from rl4rec_core.cli import main
    from rl4rec_core.embeddings.files import embedding_path
    from rl4rec_core.training.trainer import build_trainer

    assert main(["embed", "--dataset", tiny.name, "--device", DEVICE, "--emb_backend", "sentence-transformers"]) == 0
    saved = torch.load(embedding_path(tiny.name), weights_only=True)
    assert saved.device.type == "cpu"  # the file loads on a CPU-only machine too
    service = make_service(tiny, WordVectorEncoder(), device=DEVICE)
    build_trainer(settings(tiny, tiny_lm, tmp_path, num_steps=1), service, dataset=tiny, progress=False).train()
    capsys.readouterr()
    assert main(["evaluate", "--dataset", tiny.name, "--split", "valid", "--checkpoint", str(tmp_path / "run"),
                 "--device", DEVICE, "--max_users", "5", "--scorer", "cosine",
                 "--emb_backend", "sentence-transformers"]) == 0
    assert "policy:run" in capsys.readouterr().out
