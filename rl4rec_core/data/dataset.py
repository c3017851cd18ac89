"""A prepared dataset on disk and its leave-one-out splits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.paths import dataset_dir

SPLITS = ("train", "valid", "test")
# position of the target counted from the end of each sequence; history = everything before it
_TARGET_FROM_END = {"train": 3, "valid": 2, "test": 1}


@dataclass
class Split:
    """One leave-one-out split.

    user_idx: LongTensor [U]; histories: U lists of item indices (oldest first, may be empty for
    ``train`` when a user has exactly 3 items); targets: LongTensor [U], the item after the history.
    """

    name: str
    user_idx: "torch.Tensor"  # noqa: F821
    histories: list[list[int]]
    targets: "torch.Tensor"  # noqa: F821

    def __len__(self) -> int:
        return len(self.histories)


class Dataset:
    """Prepared tables of ``data_dir()/{name}``: ``items`` (row i = item i) and ``sequences``."""

    def __init__(self, name: str, folder: Path, items: pd.DataFrame, sequences: pd.DataFrame, meta: dict):
        self.name, self.folder, self.items, self.sequences, self.meta = name, folder, items, sequences, meta

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(self.sequences["items"].map(len).sum())

    @cached_property
    def item_titles(self) -> list[str]:
        return self.items["title"].tolist()

    @cached_property
    def _seqs(self) -> list[list[int]]:
        return [list(map(int, s)) for s in self.sequences["items"]]

    def item_texts(self, template: str | None = None) -> list[str]:
        """Item texts in index order; default template = the one recorded at prepare time."""
        from rl4rec_core.data.item_text import render_item_texts

        return render_item_texts(self.items, template or self.meta.get("item_text_template", "auto"))

    def split(self, split: str) -> Split:
        """Leave-one-out: test target = last item, valid = second last, train = third last."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        import torch  # only splits need torch; `rl4rec data` commands stay light

        k = _TARGET_FROM_END[split]
        return Split(
            name=split,
            user_idx=torch.tensor(self.sequences["user_idx"].tolist(), dtype=torch.long),
            histories=[s[:-k] for s in self._seqs],
            targets=torch.tensor([s[-k] for s in self._seqs], dtype=torch.long),
        )

    def train_histories(self) -> list[list[int]]:
        """Each user's sequence without the validation and test items (what popularity counts)."""
        return [s[:-2] for s in self._seqs]


def load_dataset(name: str) -> Dataset:
    folder = dataset_dir(name)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise MissingArtifactError(f"dataset {name!r} is not prepared (no {meta_path}). "
                                   f"Fix: run `rl4rec data prepare --dataset {name}`")
    try:
        meta = json.loads(meta_path.read_text())
        items = pd.read_parquet(folder / "items.parquet")
        sequences = pd.read_parquet(folder / "sequences.parquet")
    except (OSError, ValueError) as e:
        raise DataError(f"prepared dataset in {folder} is unreadable ({e}). "
                        f"Fix: run `rl4rec data prepare --dataset {name} --force`") from None
    if not (items["item_idx"].to_numpy() == range(len(items))).all():
        raise DataError(f"{folder}/items.parquet: item_idx is not 0..N-1 in row order. "
                        f"Fix: run `rl4rec data prepare --dataset {name} --force`")
    return Dataset(name, folder, items, sequences, meta)


def load_datasets(names: list[str]) -> list[Dataset]:
    """:func:`load_dataset` of each name of a run on several datasets; a missing one is named as such."""
    out = []
    for name in names:
        try:
            out.append(load_dataset(name))
        except MissingArtifactError as e:
            if len(names) == 1:
                raise
            raise MissingArtifactError(f"dataset {name!r} of the list {','.join(names)}: {e}") from None
    return out
