"""Tiny synthetic item-embedding files for the retrieval tests (the real file layout and sidecar)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rl4rec_core.embeddings.encoders import canonical_model_name, short_name
from rl4rec_core.embeddings.files import embedding_path, sidecar_path
from rl4rec_core.io import atomic_path, write_json

MODEL = "all-MiniLM-L6-v2"


@contextlib.contextmanager
def data_dirs(root: Path) -> Iterator[pytest.MonkeyPatch]:
    """Data and embeddings under ``root`` for a module-scoped fixture (``monkeypatch`` is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RL4REC_EMB_DIR", str(root / "data_emb"))
        mp.setenv("RL4REC_DATA_DIR", str(root / "data"))
        yield mp


def write_embeddings(dataset: str, matrix: torch.Tensor, emb_type: str = "item", model: str = MODEL, **sidecar):
    """Write ``matrix`` as ``emb_dir()/{dataset}_{emb_type}_{model}.pt`` with its JSON sidecar."""
    path = embedding_path(dataset, emb_type, model)
    with atomic_path(path) as tmp:
        torch.save(matrix, tmp)
    meta = {
        "dataset": dataset,
        "emb_type": emb_type,
        "model_name": canonical_model_name(model),
        "short_name": short_name(model),
        "dim": int(matrix.shape[1]),
        "num_items": int(matrix.shape[0]),
        "template": "synthetic",
        "backend": "synthetic",
    }
    meta.update(sidecar)
    write_json(sidecar_path(path), meta)
    return path


def random_items(n: int, dim: int = 384, seed: int = 0) -> torch.Tensor:
    """``[n, dim]`` float32 unit rows."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
