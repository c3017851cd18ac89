"""SASRec, the base recommender, as a Prefect task (cached) and its record in the flow's MLflow run.

``train_sasrec`` is cached by Prefect (``tasks/caching.py``): the key covers the task's arguments (the
dataset and the ``SASRecSettings``), its code, the prepared data files it reads and the file it writes,
and a hit needs the stored record to still describe the same weights. The core (``ensure_sasrec``) would
also reuse an up-to-date file; the cache saves loading the dataset and checking it. Submit it through
``tasks.caching.cached(...)`` so the results persist where every worker finds them.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from rl4rec_core.settings import SASRecSettings
from tasks.caching import FileCache, file_digest, read_json


def _sasrec_files(inputs: dict[str, Any]) -> dict[str, Any]:
    """What training reads (the prepared tables) and where it writes."""
    from rl4rec_core.paths import dataset_dir
    from rl4rec_core.recommenders.store import record_path

    folder = dataset_dir(inputs["dataset"])
    return {"data": [file_digest(folder / f) for f in ("items.parquet", "sequences.parquet")],
            "out": str(record_path(inputs["dataset"]).resolve())}


def _sasrec_ok(inputs: dict[str, Any], out: dict[str, Any]) -> bool:
    """The stored record is still the cached run's, and the weights are the ones it describes."""
    from rl4rec_core.recommenders.store import record_path, weights_path

    written = read_json(record_path(inputs["dataset"])) or {}
    return (written.get("weights_sha256") == out.get("weights_sha256") == file_digest(weights_path(inputs["dataset"]))
            and written.get("data_digest") == out.get("data_digest"))


# the device does not change which model is stored (it is the same training, elsewhere)
@task(name="train_sasrec", retries=1, retry_delay_seconds=2,
      cache_policy=FileCache(files=_sasrec_files, outputs_ok=_sasrec_ok, base=INPUTS - "device" + TASK_SOURCE))
def train_sasrec(dataset: str, settings: SASRecSettings, force: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Train ``dataset``'s SASRec with ``settings`` unless an up-to-date one is stored (``force``: train
    again); its record (path, data digest, best epoch, validation NDCG@10 / Hit@10, seconds)."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.recommenders import ensure_sasrec
    from tasks.runtime import use_assigned_cpus

    use_assigned_cpus()
    return ensure_sasrec(load_dataset(dataset), settings, overwrite=force, device=device)


def log_sasrec(run_id: str, record: dict[str, Any], dataset: str | None = None) -> None:
    """A SASRec record in the flow's MLflow run: its settings as ``sasrec.*`` params (what the flow's own
    params hold), its figures as ``sasrec.valid_ndcg10``, ``sasrec.valid_hit10``, ``sasrec.best_epoch``,
    ``sasrec.epochs``, ``sasrec.train_seconds``, and the record file. ``dataset`` (a run on several) puts its
    name in the names (``sasrec.beauty.valid_ndcg10``)."""
    from rl4rec_core.recommenders.store import record_path
    from tasks import tracking as mt

    where = f"sasrec.{dataset}." if dataset else "sasrec."
    mt.log_params(run_id, {f"{where}{k}": v for k, v in record["settings"].items()})
    mt.log_params(run_id, {f"{where}data_digest": record["data_digest"], f"{where}path": record["path"]})
    mt.log_metrics(run_id, {k: record[k] for k in ("valid_ndcg10", "valid_hit10", "best_epoch", "epochs",
                                                   "train_seconds")}, prefix=where)
    path = record_path(record["dataset"])
    if path.is_file():
        mt.log_artifact(run_id, path, "sasrec")
