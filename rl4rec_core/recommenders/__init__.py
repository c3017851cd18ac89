"""Trained base recommenders: models that score every item from a user's history alone, trained once per
dataset and stored beside the item embeddings, for the retrieval channel, the baselines and serving.

* :func:`ensure_sasrec` trains SASRec when its stored model is missing or stale (other data or settings)
  and returns its record (``rl4rec sasrec``; the ``train_sasrec`` Prefect task).
* :func:`load_base` loads a stored model as a scorer: ``score(histories) -> [B, N]`` and ``record()``. It
  never trains: a missing or stale model is a one-line error naming the command that trains it.

Modules: ``sasrec_model`` (the network and its scorer), ``sasrec_training`` (training, early stopping on
validation NDCG@10), ``store`` (the files, the data digest, the checks on load).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.settings import SASRecSettings

logger = logging.getLogger(__name__)

LOADABLE = ("sasrec",)  # the base recommenders load_base knows (echo+prior is built from the embeddings)


def load_base(name: str, dataset, settings: SASRecSettings | None = None, device: str = "cpu"):
    """The stored ``name`` model of ``dataset`` (a ``Dataset``) as a scorer on ``device``.

    ``settings`` given: the stored model must have been trained with them. A missing model, or one trained on
    other data (or settings), is a ``ConfigError`` that names the training command.
    """
    from rl4rec_core.recommenders import store
    from rl4rec_core.recommenders.sasrec_model import SASRecScorer

    if name not in LOADABLE:
        raise ConfigError(f"unknown trained base recommender {name!r}; choose one of {', '.join(LOADABLE)}")
    record = store.read_record(dataset.name)
    if record is None:
        raise store.missing(dataset.name)
    reason = store.stale_reason(record, dataset, settings)
    if reason:  # the fix retrains with the settings asked for, else with the stored model's
        wanted = settings or store.stored_settings(record)
        raise ConfigError(f"the SASRec in {store.weights_path(dataset.name)} is stale: {reason}. Fix: retrain it: "
                          f"`{store.train_command(dataset.name, wanted)} --overwrite`")
    model, stored = store.load_model(record, dataset)
    return SASRecScorer(model.to(device), stored, record)


def ensure_sasrec(dataset, settings: SASRecSettings, overwrite: bool = False, progress: bool = False,
                  device: str = "cpu") -> dict[str, Any]:
    """The record of ``dataset``'s stored SASRec, trained with ``settings`` first when it is missing, stale
    (other data or settings) or ``overwrite``. The returned record says whether it was ``reused``."""
    from rl4rec_core.recommenders import store
    from rl4rec_core.recommenders.sasrec_training import train_sasrec

    digest = store.data_digest(dataset)
    reason = "overwrite" if overwrite else None
    if not overwrite:
        try:
            record = store.read_record(dataset.name)
            reason = "missing" if record is None else store.stale_reason(record, dataset, settings, digest)
            if reason is None:
                store.load_model(record, dataset)  # the weights are there and are what the record says
                return {**record, "reused": True}
        except Rl4recError as e:  # damaged or half-written: train again
            reason = str(e)
    logger.info("sasrec: training for %s (%s)", dataset.name, reason)
    start = time.perf_counter()
    trained = train_sasrec(dataset.train_histories(), dataset.num_items, settings, valid=dataset.split("valid"),
                           progress=progress, device=device)
    record = store.save(dataset, settings, trained, time.perf_counter() - start, digest)
    return {**record, "reused": False}


def load_base_files(weights: str | Path, record_file: str | Path, num_items: int, device: str = "cpu"):
    """A base recommender from its files alone (a served model's copy: no dataset to check it against): the
    record names the model and its sha256, the weights are checked against both before they load."""
    from rl4rec_core.integrity import read_json_object
    from rl4rec_core.recommenders import store
    from rl4rec_core.recommenders.sasrec_model import SASRecScorer

    record = read_json_object(Path(record_file))
    if record.get("name") not in LOADABLE:
        raise ConfigError(f"{record_file} describes no base recommender this rl4rec loads ({record.get('name')!r})")
    fix = "Fix: register the model again from a run whose base is trained (`rl4rec sasrec`)"
    model, settings = store.load_weights(Path(weights), Path(record_file), record, num_items, fix)
    return SASRecScorer(model.to(device), settings, record)
