"""``--device`` of ``embed``, ``serve`` and ``evaluate``: ``auto`` picks CUDA only when there is a GPU, and an
explicit CUDA device without one is a one-line error naming the fix, before any model or cluster is touched.

``torch.cuda.is_available`` is pinned to False, so these tests mean the same on a GPU machine.
"""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.cli import build_parser, main
from rl4rec_core.cli.serve import _check_cluster_gpus, actor_device
from rl4rec_core.devices import resolve_device
from rl4rec_core.errors import ConfigError
from tests.helpers.tiny_recdata import write_tiny_dataset


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_the_flags_parse_with_their_defaults():
    parse = build_parser().parse_args
    assert parse(["embed", "--dataset", "d"]).device == "cpu"
    assert parse(["embed", "--dataset", "d", "--device", "auto"]).device == "auto"
    assert parse(["serve"]).device == "cpu"  # the run's device; --num_gpus > 0 puts the actor on cuda
    assert parse(["serve", "--device", "cuda:1", "--num_gpus", "1"]).device == "cuda:1"
    assert parse(["evaluate", "--dataset", "d", "--device", "auto"]).device == "auto"


def test_resolve_device(no_gpu, monkeypatch):
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available on this machine.*use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="has 1 GPU"):
        resolve_device("cuda:1")


def test_embed_refuses_cuda_without_a_gpu_and_runs_with_auto(rl4rec_dirs, no_gpu, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    assert main(["embed", "--dataset", name, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda' requested but CUDA is not available") and "--device cpu" in err
    assert not rl4rec_dirs["emb"].exists()  # refused before anything was encoded or written
    assert main(["embed", "--dataset", name, "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    assert main(["embed", "--dataset", name, "--device", "auto", "--emb_backend", "sentence-transformers"]) == 0
    assert "items x 384 dims" in capsys.readouterr().out


def test_evaluate_refuses_cuda_without_a_gpu(rl4rec_dirs, no_gpu, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    assert main(["evaluate", "--dataset", name, "--policy", "llm", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_serve_device(capsys):
    assert actor_device("auto", 0) == "cpu" and actor_device("auto", 1) == "cuda"
    assert actor_device("cpu", 1) == "cpu" and actor_device("cuda:1", 0.5) == "cuda:1"
    # refused before connecting to any cluster (none runs here)
    assert main(["serve", "--device", "cuda"]) == 2
    assert "needs a GPU for the actor: pass --num_gpus 1" in capsys.readouterr().err
    assert main(["serve", "--device", "gpu0"]) == 2
    assert "unknown --device 'gpu0'" in capsys.readouterr().err


def test_serve_refuses_a_gpu_actor_on_a_cluster_without_gpus(ray_local):
    have = ray_local.cluster_resources().get("GPU", 0)  # 0 here; a GPU machine's local Ray counts its GPUs
    with pytest.raises(ConfigError, match=rf"has {have:g} GPU\(s\): CUDA is not available to the actor"):
        _check_cluster_gpus(have + 1)
    _check_cluster_gpus(have)
