"""The trained SASRec of a dataset on disk: ``emb_dir()/{dataset}_sasrec.pt`` (the weights) and
``{dataset}_sasrec.json`` (its record: settings, data digest, best epoch, validation metrics, seconds).

One stable path per dataset, so a retrieval channel, the served model and the evaluation all find the
same model. The record says what the weights are for: the settings they were trained with and the
``data_digest`` of everything that decides them (the item count, the training histories and the
validation targets, which choose the epoch; test targets never touch them). The weights are written
first and the record last, each atomically, and the record holds the weights' sha256, so a half-replaced
pair is seen as such. Weights are read with ``weights_only`` loads and checked against the model's
shapes before they are applied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rl4rec_core import paths
from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.io import atomic_path, sha256_file, write_json
from rl4rec_core.settings import SASRecSettings

# bump when the model, the training recipe or the file layout changes, so older files are retrained
FORMAT_VERSION = 2


def weights_path(dataset: str) -> Path:
    return paths.emb_dir() / f"{dataset}_sasrec.pt"


def record_path(dataset: str) -> Path:
    return paths.emb_dir() / f"{dataset}_sasrec.json"


def train_command(dataset: str, settings: SASRecSettings | None = None) -> str:
    """``rl4rec sasrec --dataset_name ml-100k`` plus the flags of ``settings``' non-default fields."""
    flags = ""
    if settings is not None:
        default = SASRecSettings()
        flags = "".join(f" --{f.name} {getattr(settings, f.name)}" for f in dataclasses.fields(settings)
                        if getattr(settings, f.name) != getattr(default, f.name))
    return f"rl4rec sasrec --dataset_name {dataset}{flags}"


def data_digest(dataset) -> str:
    """sha256 over what decides the weights besides the settings: the item count, the training histories
    and the validation targets. The test targets are left out: they never reach training."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, "items": dataset.num_items}).encode())
    h.update(json.dumps(dataset.train_histories()).encode())
    h.update(json.dumps(dataset.split("valid").targets.tolist()).encode())
    return h.hexdigest()


def save(dataset, settings: SASRecSettings, trained, seconds: float, digest: str | None = None) -> dict[str, Any]:
    """Write the weights and then the record, each atomically; the record."""
    import torch

    path = weights_path(dataset.name)
    state = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    record = {
        "name": "sasrec", "dataset": dataset.name, "path": str(path), "weights_sha256": sha256_file(path),
        "format": FORMAT_VERSION, "num_items": dataset.num_items, "settings": dataclasses.asdict(settings),
        "data_digest": digest or data_digest(dataset), "epochs": trained.epochs, "best_epoch": trained.best_epoch,
        "valid_ndcg10": trained.valid_ndcg10, "valid_hit10": trained.valid_hit10, "train_seconds": round(seconds, 2),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(record_path(dataset.name), record)
    return record


def read_record(dataset_name: str) -> dict[str, Any] | None:
    """The record, or None when there is no trained model; a damaged one is a ``DataError`` naming the fix."""
    from rl4rec_core.integrity import read_json_object

    path = record_path(dataset_name)
    if not path.is_file() and not weights_path(dataset_name).is_file():
        return None
    try:
        return read_json_object(path)
    except DataError as e:
        raise DataError(f"{str(e).split('. Fix:')[0]}. Fix: retrain it: "
                        f"`{train_command(dataset_name)} --overwrite`") from None


def stale_reason(record: dict[str, Any], dataset, settings: SASRecSettings | None = None,
                 digest: str | None = None) -> str | None:
    """Why ``record``'s model is not the one for ``dataset`` (and ``settings`` when given), else None."""
    if record.get("format") != FORMAT_VERSION:
        return f"it was written in format {record.get('format')!r}, and this rl4rec reads format {FORMAT_VERSION}"
    if record.get("num_items") != dataset.num_items:
        return f"it scores {record.get('num_items')} items, and {dataset.name!r} has {dataset.num_items}"
    if record.get("data_digest") != (digest or data_digest(dataset)):
        return f"it was trained on other data than {dataset.name!r} holds now (the data digest differs)"
    if settings is not None and record.get("settings") != dataclasses.asdict(settings):
        theirs = record.get("settings") or {}
        changed = sorted(k for k, v in dataclasses.asdict(settings).items() if theirs.get(k) != v)
        return f"it was trained with other settings ({', '.join(changed)} differ)"
    return None


def stored_settings(record: dict[str, Any]) -> SASRecSettings | None:
    """The settings a record was trained with, or None when they are not valid settings (any more)."""
    try:
        return SASRecSettings(**record["settings"])
    except (KeyError, TypeError, ConfigError):
        return None


def load_model(record: dict[str, Any], dataset):
    """The record's model with its weights (eval mode, CPU), checked against its settings and the dataset."""
    fix = f"Fix: retrain it: `{train_command(dataset.name)} --overwrite`"
    return load_weights(weights_path(dataset.name), record_path(dataset.name), record, dataset.num_items, fix)


def load_weights(path: Path, described_by: Path, record: dict[str, Any], num_items: int, fix: str):
    """The model ``record`` describes, from ``path`` (the stored file, or a served model's copy): its sha256, its
    tensors' shapes and dtypes and their total size checked before anything is loaded."""
    from rl4rec_core.integrity import load_torch
    from rl4rec_core.recommenders.sasrec_model import SASRec
    from rl4rec_core.state_checks import SLACK_BYTES, check_tensors, tensor_bytes

    if not path.is_file():
        raise MissingArtifactError(f"{path} is missing beside its record {described_by}. {fix}")
    if sha256_file(path) != record.get("weights_sha256"):
        raise DataError(f"{path} is not the file its record {described_by} describes (sha256 differs). {fix}")
    settings = SASRecSettings(**record["settings"])
    model = SASRec(num_items, settings)
    expected = model.state_dict()
    try:
        state = load_torch(path, map_location="cpu", max_bytes=tensor_bytes(expected.values()) + SLACK_BYTES)
        if not isinstance(state, dict):
            raise DataError(f"{path} is damaged: it holds a {type(state).__name__}, not a state dict")
        check_tensors(path, state, expected)
    except DataError as e:
        raise DataError(f"{str(e).split('. Fix:')[0]}. {fix}") from None
    model.load_state_dict(state)
    return model.eval(), settings


def missing(dataset_name: str) -> ConfigError:
    return ConfigError(f"no trained SASRec for {dataset_name!r} (no {weights_path(dataset_name)}). "
                       f"Fix: train it: `{train_command(dataset_name)}`")
