"""Where rl4rec reads and writes by default. Every location can be moved by an environment variable,
which is how tests keep everything inside a temporary directory; :func:`worker_env` hands those
locations to Ray workers and actors."""

from __future__ import annotations

import os
from pathlib import Path

from rl4rec_core import env_allowlist


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


def checkpoint_root() -> Path:
    """Where training output folders go by default."""
    return _env_path("RL4REC_CHECKPOINT_ROOT", "checkpoints")


def checkpoint_dir(dataset: str) -> Path:
    """Default training output folder, as in the original: ``checkpoints/{dataset}_rl``; a run on several
    datasets (``ml-100k,beauty``) gets ``checkpoints/ml-100k+beauty_rl``, as a comma is no folder name."""
    from rl4rec_core.dataset_list import DATASET_JOIN, parse_names

    return checkpoint_root() / f"{DATASET_JOIN.join(parse_names(dataset))}_rl"


def dataset_dir(dataset: str) -> Path:
    return data_dir() / dataset


# a progress bar in a Ray worker reaches the driver as one line per refresh (one bar became 28 lines): off,
# unless the user set these
NO_PROGRESS_BARS = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
# what a Ray worker or actor gets from this process's environment: rl4rec_core/env_allowlist.py names it,
# variable by variable (credentials only when the user names them in RL4REC_WORKER_SECRETS)
SECRETS_VAR = env_allowlist.SECRETS_VAR
worker_secrets = env_allowlist.named_by_user
_PATH_VARS = ("RL4REC_DATA_DIR", "RL4REC_EMB_DIR", "RL4REC_CACHE_DIR", "RL4REC_CHECKPOINT_ROOT")


def worker_env(names: tuple[str, ...] = ()) -> dict[str, str]:
    """Environment for a Ray worker or actor: ``env_allowlist.WORKER``, ``names``, and the variables the user
    named in ``RL4REC_WORKER_SECRETS`` -- whichever of them are set.

    Locations are made absolute, the default ones included, because a worker's working directory is
    Ray's session folder, not this process's; and workers of an already running Ray never see
    variables this process set after Ray started.
    """
    allowed = env_allowlist.for_workers(names)
    env = {k: v for k, v in os.environ.items() if k in allowed}
    for k in _PATH_VARS:
        if env.get(k):
            env[k] = str(Path(env[k]).expanduser().resolve())
    env.setdefault("RL4REC_DATA_DIR", str(data_dir().resolve()))
    env.setdefault("RL4REC_EMB_DIR", str(emb_dir().resolve()))
    env.setdefault("RL4REC_CHECKPOINT_ROOT", str(checkpoint_root().resolve()))
    for k, v in NO_PROGRESS_BARS.items():
        env.setdefault(k, v)
    return env


def progress_bars() -> bool:
    """Whether this process may draw progress bars (``TQDM_DISABLE``, as tqdm reads it, says no)."""
    return os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
