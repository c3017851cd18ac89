"""MLflow lineage of a flow run: the splits it read, as MLflow datasets, and the figures of the model it
logged, as that model's metrics.

- Each split (train, valid, test) of a prepared dataset is an MLflow dataset (``mlflow.data.from_pandas``):
  one row per user, ``user_id``, ``history`` (item ids, oldest first) and ``target`` (the item after it);
  named ``{dataset}-{split}``, with a digest of exactly those rows and the prepared folder as its source. The
  flow's run records them as inputs with MLflow's context tag (``training``, ``validation``, ``testing``), so
  two runs on the same data show the same digest, and a re-prepared dataset a new one.
- The evaluation of a registered policy goes to its logged model (MLflow 3 ``LoggedModel``): each figure is
  a metric with the model's id and the evaluated split's dataset, what ``mlflow.log_metrics(...,
  model_id=..., dataset=...)`` records. The registry's version points at that model, so the figures travel
  with it; the run's ``eval_<split>/<row>/<metric>`` metrics keep every row (baselines included).

Logged through ``MlflowClient`` and explicit ids, as the rest of ``tasks/tracking.py``: the flow's run is
never the process's active run.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from tasks import tracking

# MLflow's usual dataset contexts, per leave-one-out split
CONTEXTS = {"train": "training", "valid": "validation", "test": "testing"}
POLICY_ROW = "policy"


def split_frame(dataset, split: str):
    """``[users x (user_id, history, target)]`` of one split, item ids as the source data names them."""
    import pandas as pd

    sp = dataset.split(split)
    ids = dataset.items["item_id"].astype(str).tolist()
    return pd.DataFrame({
        "user_id": dataset.sequences["user_id"].astype(str).tolist(),
        "history": [[ids[i] for i in h] for h in sp.histories],
        "target": [ids[int(t)] for t in sp.targets],
    })


def frame_digest(frame) -> str:
    """16 hex chars of sha256 over every row (so a changed history, target or user changes it)."""
    h = hashlib.sha256()
    for user, history, target in frame.itertuples(index=False):
        h.update(f"{user}\t{' '.join(history)}\t{target}\n".encode())
    return h.hexdigest()[:16]


def split_dataset(dataset, split: str):
    """The split as an MLflow ``PandasDataset`` (name, digest, source = the prepared folder, schema, profile)."""
    import mlflow

    frame = split_frame(dataset, split)
    with warnings.catch_warnings():
        # MLflow registers its local source class twice and says so on every path source it resolves
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted", category=UserWarning)
        return mlflow.data.from_pandas(frame, source=dataset.folder.resolve().as_uri(), targets="target",
                                       name=f"{dataset.name}-{split}", digest=frame_digest(frame))


def log_datasets(run_id: str, names: Iterable[str], splits: Iterable[str]) -> dict[str, Any]:
    """Record each split of each prepared dataset as an input of the run; ``{"{name}-{split}": dataset}``."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from rl4rec_core.data import load_dataset

    logged, inputs = {}, []
    for name in names:
        ds = load_dataset(name)
        for split in dict.fromkeys(splits):  # in order, once each
            mds = split_dataset(ds, split)
            logged[mds.name] = mds
            # the entity mlflow.log_input records, for a run that is not this process's active one
            inputs.append(DatasetInput(mds._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, CONTEXTS[split])]))
    tracking.client().log_inputs(run_id, datasets=inputs)
    return logged


def log_model_metrics(run_id: str, model_id: str, evaluation: Mapping[str, Mapping[str, Any]], split: str,
                      dataset: str | None = None) -> int:
    """The policy's figures of ``evaluation`` (row ``policy`` of ``dataset``, or ``{dataset}/policy`` in a run
    on several datasets) as metrics of logged model ``model_id``, each linked to the evaluated split's
    dataset; how many."""
    from mlflow.entities import Metric

    from rl4rec_core.data import load_dataset

    ts = int(time.time() * 1000)
    metrics = []
    for row, figures in evaluation.items():
        prefix, _, model = row.rpartition("/")
        if model != POLICY_ROW:
            continue
        mds = _evaluated_split(prefix or dataset, split, load_dataset)
        for key, value in tracking.numeric_items(figures).items():
            if key == "users":  # a count of the rows evaluated, not a figure of the model
                continue
            metrics.append(Metric(tracking.metric_name(key), value, ts, 0, model_id=model_id, run_id=run_id,
                                  dataset_name=mds.name if mds else None, dataset_digest=mds.digest if mds else None))
    tracking.client().log_batch(run_id, metrics=metrics)
    return len(metrics)


def _evaluated_split(dataset_name: str | None, split: str, load):
    """The MLflow dataset of the split an evaluation row was computed on; None where it cannot be read."""
    if not dataset_name:
        return None
    with contextlib.suppress(Exception):  # the figures still go to the model, without their dataset
        return split_dataset(load(dataset_name), split)
    return None
