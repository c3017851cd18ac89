"""Precomputed item embeddings: ``emb_dir()/{dataset}_{emb_type}_{short_name}.pt`` + a JSON sidecar.

The tensor is float32 ``[num_items, dim]``, row i = item index i of the prepared dataset. The
sidecar records what produced it (model, template, a hash of the item texts), so a consumer can
check the file belongs to the data and the encoder it is used with, and so re-running ``rl4rec
embed`` with the same inputs reuses the file instead of re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from rl4rec_core import paths
from rl4rec_core.embeddings.encoders import (
    DEFAULT_EMB_MODEL,
    Encoder,
    canonical_model_name,
    close_encoder,
    make_encoder,
    model_dimension,
    short_name,
)
from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

# bump when the file layout or the hash recipe changes, so old files are regenerated
FORMAT_VERSION = 1


def embedding_path(dataset: str, emb_type: str = "item", model_name: str = DEFAULT_EMB_MODEL) -> Path:
    """``emb_dir()/{dataset}_{emb_type}_{short_name}.pt``."""
    for label, value in (("dataset", dataset), ("emb_type", emb_type)):
        if not isinstance(value, str) or not value or "/" in value or "\\" in value:
            raise ConfigError(f"{label} must be a plain non-empty name without slashes, got {value!r}")
    return paths.emb_dir() / f"{dataset}_{emb_type}_{short_name(model_name)}.pt"


def sidecar_path(pt_path: str | Path) -> Path:
    """The JSON sidecar beside an embedding file (same name, ``.json``)."""
    return Path(pt_path).with_suffix(".json")


def embed_command(dataset: str, emb_type: str, model_name: str) -> str:
    """The command that (re)creates an embedding file — quoted in every error about one."""
    return f"rl4rec embed --dataset {dataset} --emb_model {model_name} --emb_type {emb_type}"


def input_hash(texts: list[str], model_name: str, template: str) -> str:
    """sha256 over the format version, the canonical model name, the template and every item text."""
    h = hashlib.sha256()
    for part in (f"v{FORMAT_VERSION}", canonical_model_name(model_name), template, str(len(texts))):
        h.update(part.encode())
        h.update(b"\0")
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")  # separator, so ["ab", "c"] and ["a", "bc"] differ
    return h.hexdigest()


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _item_texts(ds, template: str) -> tuple[list[str], str]:
    """Item texts in item-index order and the template name they were rendered with."""
    from rl4rec_core.data import item_text

    texts = item_text.render_item_texts(ds.items, template=template)
    if len(texts) != ds.num_items:
        raise DataError(f"rendered {len(texts)} item texts for {ds.num_items} items of {ds.name!r}")
    return texts, item_text.template_name(template, list(ds.items.columns))


def _as_dataset(dataset):
    """A ``Dataset`` from itself or from its name."""
    if isinstance(dataset, str):
        from rl4rec_core.data import load_dataset

        return load_dataset(dataset)
    return dataset


def _encode(enc, texts: list[str], batch_size: int, own: bool):
    """``enc.encode(texts)`` on the CPU; an encoder made here (``own``) is closed at once: a vLLM engine left
    to interpreter exit can abort the process after the work is done."""
    try:
        emb = enc.encode(texts, batch_size=batch_size, progress=paths.progress_bars())
    finally:
        if own:
            close_encoder(enc)
    return emb.cpu() if isinstance(emb, torch.Tensor) else emb  # a file saved from a GPU tensor holds CUDA tensors


def generate_item_embeddings(
    dataset,
    emb_model: str = DEFAULT_EMB_MODEL,
    emb_type: str = "item",
    backend: str = "auto",
    template: str = "auto",
    batch_size: int = 64,
    force: bool = False,
    encoder: Encoder | None = None,
    device: str = "cpu",
) -> Path:
    """Embed every item's text and write the ``.pt`` file and its sidecar atomically.

    Args:
        dataset: a dataset name (loaded with ``rl4rec_core.data.load_dataset``) or a ``Dataset``.
        emb_model: model name or path; ``all-MiniLM-L6-v2`` is the packaged offline default.
        emb_type: label in the file name (the original used ``item`` and ``review_description``).
        backend: ``auto`` | ``vllm`` | ``sentence-transformers`` (ignored when ``encoder`` is given).
        template: item text template name (see ``rl4rec_core.data.item_text``).
        encoder: an already-loaded encoder to reuse (its model must be ``emb_model``).
        force: re-encode even when the sidecar says the file is up to date.

    Returns:
        the path of the ``.pt`` file (float32 ``[num_items, dim]``).
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    ds = _as_dataset(dataset)
    if encoder is not None and canonical_model_name(encoder.model_name) != canonical_model_name(emb_model):
        raise ConfigError(f"encoder is {encoder.model_name!r} but emb_model is {emb_model!r}; pass matching names")
    out = embedding_path(ds.name, emb_type, emb_model)
    side = sidecar_path(out)
    texts, template_name = _item_texts(ds, template)
    if not texts:
        raise DataError(f"dataset {ds.name!r} has no items to embed; re-run rl4rec data prepare --dataset {ds.name}")
    digest = input_hash(texts, emb_model, template_name)

    old = _read_sidecar(side) if out.exists() else None
    if not force and old and old.get("input_hash") == digest and old.get("file_sha256") == sha256_file(out):
        log.info("reusing %s (same items, model and template; pass --force to re-encode)", out)
        return out

    enc = encoder if encoder is not None else make_encoder(emb_model, backend=backend, device=device)
    log.info("embedding %d item texts of %s with %s (%s backend)", len(texts), ds.name, enc.model_name, enc.backend)
    emb = _encode(enc, texts, batch_size, own=encoder is None)
    _check_tensor(emb, out, ds.name, emb_type, emb_model, expect_items=len(texts), expect_dim=enc.dim)
    record = {
        "dataset": ds.name,
        "emb_type": emb_type,
        "model_name": canonical_model_name(emb_model),
        "short_name": short_name(emb_model),
        "template": template_name,
        "input_hash": digest,
        "backend": enc.backend,
    }
    _write_with_sidecar(emb, out, side, record)
    log.info("wrote %s %s", out, tuple(emb.shape))
    return out


def _write_with_sidecar(emb: torch.Tensor, out: Path, side: Path, record: dict[str, Any]) -> None:
    """Write the tensor to ``out``, then its sidecar ``side``: ``record`` plus the shape, checksum and format."""
    # tensor first, sidecar last: the sidecar carries the tensor's checksum, so a crash between the
    # two renames leaves a mismatch that the next run detects and repairs, never a silent pairing
    with atomic_path(out) as tmp:
        torch.save(emb.contiguous(), tmp)
        checksum = sha256_file(tmp)
    write_json(
        side,
        {
            **record,
            "dim": int(emb.shape[1]),
            "num_items": int(emb.shape[0]),
            "file_sha256": checksum,
            "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )


def _check_tensor(emb, path, dataset, emb_type, model_name, expect_items=None, expect_dim=None) -> None:
    fix = f"regenerate it with `{embed_command(dataset, emb_type, model_name)} --force`"
    if not isinstance(emb, torch.Tensor):
        raise DataError(f"{path} holds a {type(emb).__name__}, not a tensor; {fix}")
    if emb.dtype != torch.float32:
        raise DataError(f"{path} has dtype {emb.dtype}, expected torch.float32; {fix}")
    if emb.dim() != 2:
        raise DataError(f"{path} has shape {tuple(emb.shape)}, expected 2-D [num_items, dim]; {fix}")
    if not torch.isfinite(emb).all():
        bad = int((~torch.isfinite(emb)).any(dim=1).sum())
        raise DataError(f"{path} contains NaN/Inf values in {bad} item rows; {fix}")
    if expect_items is not None and emb.shape[0] != expect_items:
        raise DataError(
            f"{path} has {emb.shape[0]} item rows but the dataset has {expect_items} items "
            f"(the data was re-prepared after embedding?); {fix}"
        )
    if expect_dim is not None and emb.shape[1] != expect_dim:
        raise DataError(
            f"{path} has dimension {emb.shape[1]} but {expect_dim} was expected (a different embedding "
            f"model?); use the same --emb_model as the encoder, or {fix}"
        )


def dimension_error(path, got: int, expect: int, dataset: str, emb_type: str, model_name: str) -> DataError:
    """The error for an embedding file whose vectors are not the size its model (the encoder) gives."""
    return DataError(
        f"{path} has dimension {got} but {expect} was expected: {canonical_model_name(model_name)} gives "
        f"{expect}-dimensional vectors, so the file was made by another model (or overwritten, sidecar and all) "
        f"and its scores would mean nothing. Fix: regenerate it with "
        f"`{embed_command(dataset, emb_type, model_name)} --force`"
    )


def load_item_embeddings(
    dataset: str,
    emb_type: str = "item",
    model_name: str = DEFAULT_EMB_MODEL,
    expect_dim: int | None = None,
    expect_items: int | None = None,
    verify_checksum: bool = True,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Load and validate an embedding file: ``(float32 [num_items, dim], sidecar dict)``.

    ``dim`` must be ``expect_dim``, or else the size the model gives when its folder tells
    (``model_dimension``): a sidecar rewritten along with the file cannot hide another model's vectors.

    Raises ``MissingArtifactError`` (naming the ``rl4rec embed`` command) when the file or its sidecar
    is missing, and ``DataError`` when it is corrupt or does not match the expectations.
    """
    path = embedding_path(dataset, emb_type, model_name)
    cmd = embed_command(dataset, emb_type, model_name)
    if not path.exists():
        raise MissingArtifactError(f"no item embeddings at {path}; create them with `{cmd}`")
    side = sidecar_path(path)
    meta = _read_sidecar(side)
    if meta is None:
        raise MissingArtifactError(f"{side} (the sidecar of {path}) is missing or unreadable; run `{cmd} --force`")
    if meta.get("dataset") != dataset:
        raise DataError(f"{path} was made for dataset {meta.get('dataset')!r}, not {dataset!r}; run `{cmd} --force`")
    recorded = meta.get("model_name")
    if not recorded or canonical_model_name(recorded) != canonical_model_name(model_name):
        raise DataError(
            f"{path} was made with model {meta.get('model_name')!r}, not {canonical_model_name(model_name)!r}; "
            f"run `{cmd} --force`"
        )
    if verify_checksum and meta.get("file_sha256") and meta["file_sha256"] != sha256_file(path):
        raise DataError(f"{path} does not match the checksum in its sidecar (overwritten or truncated); run `{cmd} --force`")
    try:
        emb = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which and how to fix it
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); run `{cmd} --force`") from e
    _check_tensor(emb, path, dataset, emb_type, model_name, expect_items=expect_items)
    if emb.shape[0] != meta.get("num_items") or emb.shape[1] != meta.get("dim"):
        raise DataError(
            f"{path} has shape {tuple(emb.shape)} but its sidecar says "
            f"[{meta.get('num_items')}, {meta.get('dim')}]; run `{cmd} --force`"
        )
    # a sidecar that agrees with the file proves nothing about the model: check the model's own size
    expect_dim = expect_dim if expect_dim is not None else model_dimension(model_name)
    if expect_dim is not None and emb.shape[1] != expect_dim:
        raise dimension_error(path, int(emb.shape[1]), expect_dim, dataset, emb_type, model_name)
    return emb, meta


def is_normalised(emb: torch.Tensor, tol: float = 1e-3) -> bool:
    """True when every row has unit L2 norm (cosine = dot product)."""
    norms = emb.norm(dim=1)
    return bool(torch.allclose(norms, torch.ones_like(norms), atol=tol)) if len(emb) else True


__all__ = [
    "embedding_path",
    "sidecar_path",
    "embed_command",
    "input_hash",
    "generate_item_embeddings",
    "load_item_embeddings",
    "is_normalised",
]
