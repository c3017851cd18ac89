"""Where rl4rec reads and writes by default. Every location can be moved by an environment variable,
which is how tests keep everything inside a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path


def _env_path(var: str, default: str | Path) -> Path:
    return Path(os.environ.get(var) or default).expanduser()


def data_dir() -> Path:
    """Prepared datasets: ``{data_dir}/{dataset}/items.parquet`` and ``sequences.parquet``."""
    return _env_path("RL4REC_DATA_DIR", "data")


def emb_dir() -> Path:
    """Item embeddings: ``{emb_dir}/{dataset}_{emb_type}_{model}.pt`` plus a JSON sidecar."""
    return _env_path("RL4REC_EMB_DIR", "data_emb")


def cache_dir() -> Path:
    """Downloaded package wheels and converted model assets (shared across projects)."""
    return _env_path("RL4REC_CACHE_DIR", Path.home() / ".cache" / "rl4rec")


def checkpoint_dir(dataset: str) -> Path:
    """Default training output folder, as in the original: ``checkpoints/{dataset}_rl``."""
    return _env_path("RL4REC_CHECKPOINT_ROOT", "checkpoints") / f"{dataset}_rl"


def dataset_dir(dataset: str) -> Path:
    return data_dir() / dataset
