"""Helpers the sub-commands share."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """``cls`` (a config dataclass) from the flags named like its fields; ``overrides`` win.

    One flag per field, same name: the config's own ``__post_init__`` then validates every value.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **overrides})
