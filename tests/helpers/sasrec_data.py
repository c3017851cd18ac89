"""Tiny datasets and settings for SASRec's tests: the 24 movies of tiny_recdata.py with chosen sequences."""

from __future__ import annotations

import pandas as pd
import torch

from rl4rec_core.data import load_dataset
from rl4rec_core.settings import SASRecSettings
from tests.helpers.tiny_recdata import write_tiny_dataset

# small and quick; dropout off so the cyclic pattern is learnt in few epochs
FAST = SASRecSettings(sasrec_max_len=8, sasrec_hidden=16, sasrec_layers=1, sasrec_dropout=0.0,
                      sasrec_learning_rate=1e-2, sasrec_batch_size=32, sasrec_max_epochs=8, sasrec_patience=8)


def fast_flags() -> list[str]:
    """FAST as `rl4rec sasrec` flags."""
    return [x for k, v in FAST.__dict__.items() for x in (f"--{k}", str(v))]


def with_sequences(data_dir, name: str, seqs: list[list[int]]):
    """The tiny dataset's 24 items with our own user sequences, prepared as ``name`` and loaded."""
    write_tiny_dataset(data_dir, name)
    df = pd.DataFrame({"user_idx": range(len(seqs)), "user_id": [f"u{u}" for u in range(len(seqs))], "items": seqs})
    df.to_parquet(data_dir / name / "sequences.parquet", index=False)
    return load_dataset(name)


def cyclic(data_dir, users: int = 60, seed: int = 0, name: str = "cyclic"):
    """Users walk through the 24 items in order from a random start: the next item is always ``last + 1``."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, 24, (users,), generator=g).tolist()
    lengths = torch.randint(6, 11, (users,), generator=g).tolist()
    return with_sequences(data_dir, name, [[(s + j) % 24 for j in range(n)] for s, n in zip(starts, lengths)])
