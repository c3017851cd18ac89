"""A run on several datasets: ``--dataset_name ml-100k,beauty`` and ``--dataset_weights 0.7,0.3`` parsed and
checked (``RunSettings.datasets`` / ``.weights``), each error naming the fix."""

from __future__ import annotations

import math

from rl4rec_core.errors import ConfigError

# joins the names of a run on several datasets in folders and model names (a comma is no folder name)
DATASET_JOIN = "+"


def parse_names(dataset_name: str) -> list[str]:
    """The dataset names of ``a,b`` in order (one for a single-dataset run)."""
    names = [n.strip() for n in dataset_name.split(",")]
    if any(not n for n in names):
        raise ConfigError(f"dataset_name {dataset_name!r} has an empty name; write it as ml-100k,beauty "
                          f"(comma-separated, no empty entries)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"dataset_name {dataset_name!r} names {', '.join(dup)} twice; give each dataset "
                          f"once and set its share with --dataset_weights")
    return names


def parse_weights(dataset_weights: str, names: list[str]) -> list[float]:
    """``0.7,0.3`` for ``names``, normalised to sum 1."""
    if len(names) == 1:
        raise ConfigError(f"dataset_weights {dataset_weights!r} needs several datasets, but dataset_name "
                          f"names one ({names[0]}); drop --dataset_weights or list more datasets")
    try:
        w = [float(x) for x in str(dataset_weights).split(",")]
    except ValueError:
        raise ConfigError(f"dataset_weights {dataset_weights!r} is not comma-separated numbers; "
                          f"e.g. --dataset_weights 0.7,0.3") from None
    if len(w) != len(names):
        raise ConfigError(f"dataset_weights has {len(w)} values for {len(names)} datasets ({', '.join(names)}); "
                          f"give one weight per dataset, in the same order")
    bad = [(n, x) for n, x in zip(names, w) if not x > 0 or math.isinf(x)]
    if bad:
        # a zero weight would train nothing on it: dropping it from the list says so plainly
        raise ConfigError(f"dataset_weights must be positive and finite; {', '.join(n for n, _ in bad)} got "
                          f"{', '.join(str(x) for _, x in bad)}; drop a dataset from --dataset_name rather than "
                          f"giving it weight 0")
    total = sum(w)
    return [x / total for x in w]
