"""Prefect caching of the idempotent tasks (prepare data, embed, tune retrieval).

A task's cache key is ``INPUTS + TASK_SOURCE`` (its arguments and its code) plus the *content* of the
files it reads and the folder it writes to (``files(inputs)``), so a changed catalogue, model or code
version misses, and two data folders (two checkouts, two tests) never share a result. A key is a hit
only while the outputs are still as the cached run left them (``outputs_ok(inputs, cached_result)``):
a deleted or rewritten output file makes the task run again instead of returning a stale path.

Results are persisted as files in :func:`results_dir` (``RL4REC_PREFECT_RESULTS``, default
``{cache_dir}/prefect-results``). The flow resolves that folder and hands it to the task
(:func:`cached`), so a Ray worker in any working directory reads and writes the same records.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.utilities.hashing import hash_objects

from rl4rec_core.io import sha256_file

RESULTS_ENV = "RL4REC_PREFECT_RESULTS"


def results_dir() -> Path:
    """Where cached task results are persisted (absolute)."""
    from rl4rec_core import paths

    raw = os.environ.get(RESULTS_ENV) or str(paths.cache_dir() / "prefect-results")
    return Path(raw).expanduser().resolve()


def cached(task):
    """``task`` with its results persisted in :func:`results_dir`, resolved here in the flow and passed as
    a ``Path`` (Prefect makes a local file system of it in the worker; no block to save on the server)."""
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return task.with_options(result_storage=folder, persist_result=True)


def file_digest(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return sha256_file(path)


def tree_digest(path: str | Path | None) -> str | None:
    """sha256 over every file (relative name + bytes) below a folder, or of the file itself."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + (file_digest(f) or "").encode() + b"\0")
    return h.hexdigest()


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class FileCache(CachePolicy):
    """``INPUTS + TASK_SOURCE`` plus ``files(inputs)``; a stored result is reused only if
    ``outputs_ok(inputs, result)``. ``force=True`` in the inputs never reads or writes the cache."""

    files: Callable[[dict[str, Any]], Any] | None = None
    outputs_ok: Callable[[dict[str, Any], Any], bool] | None = None
    base: CachePolicy = field(default_factory=lambda: INPUTS + TASK_SOURCE)

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        if inputs.get("force"):
            return None
        base = self.base.compute_key(task_ctx=task_ctx, inputs=inputs, flow_parameters=flow_parameters, **kwargs)
        files = self.files(inputs) if self.files else None
        key = hash_objects(base, files, raise_on_failure=True)
        if self.outputs_ok is None:
            return key
        store = task_ctx.result_store
        if not store.exists(key):
            return key
        try:
            ok = self.outputs_ok(inputs, store.read(key).result)
        except Exception:
            ok = False
        # the outputs changed since the cached run: run again under a key nobody reuses (the rebuilt
        # files make the plain key valid again for the next run)
        return key if ok else f"{key}-rebuild-{uuid.uuid4().hex}"
