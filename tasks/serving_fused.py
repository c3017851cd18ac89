"""The fused recommender inside a served model: the base recommender (a copy of its files) and the gamma the run
evaluated with travel in the model's catalogue, so ``predict`` ranks as the evaluation did.

At logging time :func:`pack_fusion` copies what the base needs (SASRec's weights and record; echo+prior needs only
the catalogue's items and tuned prior) and records ``{"base", "gamma", "num_candidates", "constrained"}``. At load
time :func:`fusion_for` rebuilds the ``FusionSettings`` (gamma fixed) and the base. In ``predict`` the prompt shows
the base's top-K of the user's history and the items come from ``z(base) + gamma * z(cos(text, item))``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BASE_DIR = "base"
WEIGHTS, RECORD = "weights.pt", "record.json"


def pack_fusion(config: dict[str, Any], dataset: str, emb_type: str, emb_model: str, dest: Path) -> dict | None:
    """The catalogue's ``fusion`` entry for a checkpoint's ``config.json`` (None without a base), its base's files
    copied under ``dest/base``. The gamma is the dataset's tuned fusion record (the one the evaluation wrote),
    else the run's ``gamma`` setting, else the untuned one."""
    from rl4rec_core.retrieval.fusion_tuning import read_fusion_record
    from rl4rec_core.settings import UNTUNED_GAMMA, FusionSettings

    fusion = FusionSettings(**(config.get("fusion") or {}))
    if fusion.base == "none":
        return None
    from rl4rec_core.retrieval.fusion_tuning import fusion_path

    found = read_fusion_record(fusion_path(dataset, emb_type, emb_model))
    tuned = found[0] if found and found[0]["base"].get("base") == fusion.base else None
    gamma = fusion.gamma if fusion.gamma is not None else (tuned["gamma"] if tuned else UNTUNED_GAMMA)
    if fusion.base == "sasrec":
        from rl4rec_core.recommenders import store

        (dest / BASE_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.weights_path(dataset), dest / BASE_DIR / WEIGHTS)
        shutil.copyfile(store.record_path(dataset), dest / BASE_DIR / RECORD)
    return {"base": fusion.base, "gamma": float(gamma), "num_candidates": fusion.num_candidates,
            "constrained": fusion.constrained, "gamma_source": "tuned" if tuned and fusion.gamma is None else
            ("settings" if fusion.gamma is not None else "untuned")}


def fusion_for(folder: Path, raw: dict[str, Any], num_items: int):
    """``(FusionSettings, {dataset: base} or None)`` of a catalogue; ``(None, None)`` without a base."""
    entry = raw.get("fusion")
    if not entry:
        return None, None
    from rl4rec_core.settings import FusionSettings

    fusion = FusionSettings(base=entry["base"], gamma=float(entry["gamma"]), num_candidates=int(entry["num_candidates"]),
                            constrained=bool(entry.get("constrained", False)))
    if fusion.base != "sasrec":  # echo+prior: the service builds it from the items and the tuned prior
        return fusion, None
    from rl4rec_core.recommenders import load_base_files

    base = load_base_files(folder / BASE_DIR / WEIGHTS, folder / BASE_DIR / RECORD, num_items)
    return fusion, {raw["dataset"]: base}


def describe(raw: dict[str, Any]) -> str:
    """One line for logs and the model version's description."""
    entry = raw.get("fusion")
    return json.dumps(entry) if entry else "text alone"
