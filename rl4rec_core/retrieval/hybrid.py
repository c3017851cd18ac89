"""The hybrid scorer of each dataset: its weights (``HybridWeights``), tuned on validation and stored with the embeddings.

Text similarity alone ranks MovieLens below popularity, so the service scores

    score(q, i) = cos(q, e_i) + beta * prior_i,     prior_i = log(1 + training interactions of item i)

and may fuse the query with what the user watched last:

    q = normalize(text_emb + alpha * mean(e_j for the last m history items j))

``beta``, ``alpha`` and ``m`` are chosen by ``rl4rec tune-retrieval`` on the validation split and written
to ``{dataset}_{emb_type}_{model}.retrieval.json`` beside the item embeddings, together with the
prior's counts (so a service running where the dataset is not still has them) and the validation
figures. Rewards, top-k and evaluation all read the same file, through :func:`resolve_tuned`, which also
applies the retrieval settings ``beta``, ``alpha`` and ``history_m`` when given (they override the file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.io import write_json
from rl4rec_core.settings import UNTUNED_WEIGHTS, RetrievalSettings

SETTINGS_VERSION = 1
_UNTUNED = UNTUNED_WEIGHTS


@dataclass
class HybridWeights:
    """How the service turns a query into item scores.

    beta: weight of the popularity prior ``log(1 + count)``; 0 = plain cosine.
    alpha: weight of the mean embedding of the user's last ``history_m`` items added to the text
        embedding before normalising; 0 = the text alone.
    history_m: how many recent history items the fused query (and the echo+prior baseline) averages.
    """

    beta: float = _UNTUNED["beta"]
    alpha: float = _UNTUNED["alpha"]
    history_m: int = _UNTUNED["history_m"]

    def __post_init__(self) -> None:
        for name in ("beta", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"retrieval setting {name} must be a number >= 0, got {value!r}; e.g. {name}=0.05")
            setattr(self, name, float(value))
        if isinstance(self.history_m, bool) or not isinstance(self.history_m, int) or self.history_m < 1:
            raise ConfigError(f"retrieval setting history_m must be an integer >= 1, got {self.history_m!r}; e.g. 5")

    @property
    def scorer(self) -> str:
        return "hybrid" if self.beta > 0 or self.alpha > 0 else "cosine"

    def describe(self) -> str:
        """One line for every figure this scorer produces."""
        if self.scorer == "cosine":
            return "cosine"
        return f"hybrid(beta={self.beta:g}, alpha={self.alpha:g}, m={self.history_m})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TunedRetrieval:
    """What ``tune-retrieval`` writes: the settings, the prior's counts and the validation evidence."""

    dataset: str
    settings: HybridWeights
    prior_counts: list[int]
    validation: dict[str, Any] = field(default_factory=dict)
    digest: str | None = None  # sha256 of the settings file it was read from

    def prior(self) -> torch.Tensor:
        """``log(1 + count)`` per item: float32 ``[N]``."""
        return torch.log1p(torch.tensor(self.prior_counts, dtype=torch.float32))


def settings_path(dataset: str, emb_type: str, model_name: str) -> Path:
    """``{dataset}_{emb_type}_{model}.retrieval.json`` beside the item-embedding file."""
    from rl4rec_core.embeddings.files import embedding_path

    return embedding_path(dataset, emb_type, model_name).with_suffix(".retrieval.json")


def tune_command(dataset: str, emb_type: str, model_name: str) -> str:
    return f"rl4rec tune-retrieval --dataset_name {dataset} --emb_model_name {model_name} --emb_type {emb_type}"


def train_counts(train_histories: Sequence[Sequence[int]], num_items: int) -> list[int]:
    """Interactions per item in the training histories only (validation and test targets never count)."""
    flat = torch.tensor([int(i) for h in train_histories for i in h], dtype=torch.long)
    if len(flat) and (flat.min() < 0 or flat.max() >= num_items):
        raise DataError(f"training histories reference item indices outside [0, {num_items})")
    return torch.bincount(flat, minlength=num_items).tolist()


def save_tuned(path: Path, tuned: TunedRetrieval, emb_model: str, emb_type: str) -> Path:
    """Write the settings file atomically (a failed write leaves the previous one intact)."""
    write_json(path, {
        "version": SETTINGS_VERSION,
        "dataset": tuned.dataset,
        "emb_model": emb_model,
        "emb_type": emb_type,
        "scorer": tuned.settings.describe(),
        "settings": tuned.settings.to_dict(),
        "validation": tuned.validation,
        "prior_counts": list(map(int, tuned.prior_counts)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    return path


def load_tuned(dataset: str, emb_type: str, model_name: str, num_items: int | None = None) -> TunedRetrieval:
    """The tuned settings of ``dataset``; a clear error naming ``tune-retrieval`` when absent or broken."""
    path = settings_path(dataset, emb_type, model_name)
    cmd = tune_command(dataset, emb_type, model_name)
    if not path.is_file():
        raise MissingArtifactError(f"no retrieval settings for {dataset!r} at {path}; choose them with `{cmd}`")
    try:
        data = path.read_bytes()
        raw = json.loads(data)
        settings = HybridWeights(**raw["settings"])
        counts = [int(c) for c in raw["prior_counts"]]
    except ConfigError as e:
        raise DataError(f"{path} holds invalid settings ({e}); run `{cmd}` again") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} is unreadable ({type(e).__name__}: {e}); run `{cmd}` again") from None
    if raw.get("dataset") != dataset:
        raise DataError(f"{path} was tuned for dataset {raw.get('dataset')!r}, not {dataset!r}; run `{cmd}`")
    if num_items is not None and len(counts) != num_items:
        raise DataError(f"{path} has prior counts for {len(counts)} items but {dataset!r} has {num_items}; run `{cmd}`")
    if any(c < 0 for c in counts):
        raise DataError(f"{path} has negative prior counts; run `{cmd}` again")
    return TunedRetrieval(dataset, settings, counts, raw.get("validation", {}), hashlib.sha256(data).hexdigest())


def scorer_record(tuned: TunedRetrieval | None) -> dict[str, Any]:
    """What decides a dataset's scores, as a flat record: the scorer, each of its weights and the sha256 of
    the settings file they came from, from what :func:`resolve_tuned` returned (None: plain cosine). A
    checkpoint's ``config.json`` keeps it and ``--resume`` compares it, so the reward cannot change under a
    resumed run; a new weight of the scorer is one more key here."""
    weights = tuned.settings if tuned is not None else HybridWeights()
    return {"scorer": weights.scorer, **weights.to_dict(), "settings_sha256": tuned.digest if tuned else None}


def resolve_tuned(dataset: str, retrieval: RetrievalSettings, num_items: int | None = None,
                  tuned: TunedRetrieval | None = None) -> TunedRetrieval | None:
    """What scores ``dataset`` under ``retrieval``: the tuned file's weights (or ``tuned``, already loaded) with
    the settings' ``beta``/``alpha``/``history_m`` on top; None for plain cosine.

    ``scorer`` ``cosine``: None. ``hybrid``: the file is required. ``auto``: the file when it exists; without it
    the given weights alone over the untuned ones (the prior's counts from the prepared dataset), else None.
    """
    if retrieval.scorer == "cosine":
        return None
    path = settings_path(dataset, retrieval.emb_type, retrieval.emb_model_name)
    if tuned is None and (retrieval.scorer == "hybrid" or path.is_file()):
        tuned = load_tuned(dataset, retrieval.emb_type, retrieval.emb_model_name, num_items=num_items)
    overrides = retrieval.weight_overrides
    if tuned is None and not overrides:
        return None
    if tuned is None:
        tuned = TunedRetrieval(dataset, HybridWeights(), _prepared_counts(dataset, retrieval), {})
    if overrides:
        tuned = dataclasses.replace(tuned, settings=dataclasses.replace(tuned.settings, **overrides))
    return tuned


def _prepared_counts(dataset: str, retrieval: RetrievalSettings) -> list[int]:
    """The prior's counts from the prepared dataset, for weights given without a tuned file."""
    from rl4rec_core.data import load_dataset

    try:
        ds = load_dataset(dataset)
    except MissingArtifactError:
        cmd = tune_command(dataset, retrieval.emb_type, retrieval.emb_model_name)
        raise MissingArtifactError(f"--beta/--alpha/--history_m for {dataset!r} need the prior's counts: tune it "
                                   f"first (`{cmd}`), or prepare the dataset where the service runs") from None
    return train_counts(ds.train_histories(), ds.num_items)


def history_mean(item_emb: torch.Tensor, histories: Sequence[Sequence[int]], m: int) -> torch.Tensor:
    """Mean of the unit embeddings of each user's last ``m`` items: ``[B, d]`` (zeros for an empty history).

    ``item_emb`` ``[N, d]`` must be row-normalised.
    """
    b, d = len(histories), item_emb.shape[1]
    lengths = torch.tensor([min(len(h), m) for h in histories], dtype=torch.long)
    rows = torch.repeat_interleave(torch.arange(b), lengths)
    cols = torch.tensor([int(i) for h in histories for i in list(h)[-m:]], dtype=torch.long)
    out = torch.zeros(b, d, dtype=item_emb.dtype, device=item_emb.device)
    if len(cols):
        out.index_add_(0, rows.to(item_emb.device), item_emb[cols.to(item_emb.device)])
    return out / lengths.clamp_min(1).to(out.device, out.dtype)[:, None]


def fuse_query(
    text_emb: torch.Tensor, item_emb: torch.Tensor, histories: Sequence[Sequence[int]] | None,
    settings: HybridWeights,
) -> torch.Tensor:
    """``normalize(text_emb + alpha * history_mean)``: ``[B, d]`` unit rows (``text_emb`` unit rows too)."""
    if settings.alpha == 0 or histories is None:
        return text_emb
    fused = text_emb + settings.alpha * history_mean(item_emb, histories, settings.history_m)
    return torch.nn.functional.normalize(fused, dim=1)
