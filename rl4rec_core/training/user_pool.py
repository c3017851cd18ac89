"""The users a run trains on: every usable train user of each of its datasets, in one pool.

One pool (histories and targets concatenated over the datasets, plus the dataset of each user) keeps
``RLTrainer.sample_users()`` an array of indices, which the data-parallel trainer shards across workers
whatever the datasets. Item indices stay each dataset's own: rewards are asked per dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rl4rec_core.errors import ConfigError, DataError


class UserPool:
    """``histories[u]`` / ``targets[u]`` of pool user u (train split: history = seq[:-3], target = seq[-3]),
    ``dataset_of [U]`` the position of u's dataset in ``names``, ``weights [D]`` each dataset's share of a step."""

    def __init__(self, names: Sequence[str], datasets: Sequence, weights: Sequence[float] | None = None):
        if len(names) != len(datasets):
            raise ConfigError(f"the run names {len(names)} datasets ({', '.join(names)}) but {len(datasets)} "
                              f"were given to the trainer")
        self.names = list(names)
        self.titles = [ds.item_titles for ds in datasets]
        self.histories: list[list[int]] = []
        self.targets: list[int] = []
        sizes = []
        for name, ds in zip(self.names, datasets):
            split = ds.split("train")
            # users whose train history (seq[:-3]) is empty have nothing to put in a prompt
            keep = [i for i, h in enumerate(split.histories) if len(h) > 0]
            if not keep:
                raise DataError(
                    f"no user of {name!r} has a training history (every sequence needs >= 4 items: history = "
                    f"seq[:-3], target = seq[-3]); prepare a dataset with longer sequences"
                )
            self.histories += [list(map(int, split.histories[i])) for i in keep]
            self.targets += [int(split.targets[i]) for i in keep]
            sizes.append(len(keep))
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.dataset_of = np.repeat(np.arange(len(sizes)), self.sizes)
        # default: each dataset's share of the pool, so a step looks like a draw from all users together
        # and the small dataset is not oversampled (equal shares would repeat its users far more often)
        w = np.asarray(weights if weights is not None else self.sizes / self.sizes.sum(), dtype=np.float64)
        self.weights = w / w.sum()

    def __len__(self) -> int:
        return len(self.histories)

    @property
    def multi(self) -> bool:
        return len(self.names) > 1

    def sample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``[k]`` pool indices: per-dataset counts drawn by weight, users within a dataset without
        replacement. One dataset draws exactly as before there were several (same samples for a seed)."""
        if not self.multi:
            return rng.choice(len(self.histories), size=k, replace=False)
        counts = fit_counts(rng.multinomial(k, self.weights), self.sizes)
        parts = [self.offsets[d] + rng.choice(self.sizes[d], size=c, replace=False)
                 for d, c in enumerate(counts) if c]
        return np.concatenate(parts)

    def history_titles(self, users: np.ndarray) -> list[list[str]]:
        """Each user's history as titles of its own dataset (what the prompt shows)."""
        return [[self.titles[self.dataset_of[u]][i] for i in self.histories[u]] for u in users]

    def target_titles(self, users: np.ndarray) -> list[str]:
        """The title of each user's target, in its own dataset (what ``names_target`` looks for)."""
        return [self.titles[self.dataset_of[u]][self.targets[u]] for u in users]

    def groups(self, users: np.ndarray, repeat: int = 1) -> list[tuple[int, np.ndarray]]:
        """``(dataset position, positions)`` of each dataset present among ``users`` each repeated
        ``repeat`` times (the samples of a step), in ``names`` order."""
        of = np.repeat(self.dataset_of[np.asarray(users, dtype=np.int64)], repeat)
        return [(int(d), np.flatnonzero(of == d)) for d in np.unique(of)]


def fit_counts(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``counts [D]`` with what a dataset cannot take (more users drawn than it has) moved to the datasets
    with room, in order; deterministic, so a resumed run draws the same. The trainer checks that the
    pool holds a step's users, so everything finds a place."""
    total = int(counts.sum())
    out = np.minimum(counts, sizes)
    for d in range(len(out)):
        extra = min(int(sizes[d] - out[d]), total - int(out.sum()))
        out[d] += extra
    return out
