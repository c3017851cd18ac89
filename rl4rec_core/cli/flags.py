"""Command-line flags generated from the settings dataclasses (``rl4rec_core/settings.py``).

One flag per field, same name, the field's default and help: a setting is declared once and the
CLI cannot drift from the flows, which take the same groups as parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from rl4rec_core.settings import GROUPS, Settings


def _value_type(hint: Any) -> Any:
    """``int | None`` -> ``int``; ``list[str]`` -> ``list``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return typing.get_origin(hint) or hint


def add_group_flags(parser: argparse.ArgumentParser, cls: type, title: str, given_only: bool = False,
                    shown_defaults: dict[str, Any] | None = None) -> None:
    """Add one flag per field of ``cls``.

    ``given_only``: every default is ``None`` so the caller can tell what was given (``rl4rec run``
    fills the rest from a profile); ``shown_defaults`` are then the defaults the help names.
    """
    group = parser.add_argument_group(f"{title} settings", (cls.__doc__ or "").strip().splitlines()[0])
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = (shown_defaults or {}).get(f.name, default)
        kind = _value_type(hints[f.name])
        text = f.metadata.get("help", "")
        # the default goes in the help unless the text already says what happens without the flag
        shown_text = text if "default" in text or shown is None else f"{text} (default: {shown})"
        extra: dict[str, Any] = {"default": None if given_only else default, "dest": f.name}
        if kind is bool:
            # --name / --no_name (and --no-name): the help shows the one that changes the default
            on, off = (text, argparse.SUPPRESS) if not shown else (argparse.SUPPRESS, f"switch off: {text}")
            group.add_argument(f"--{f.name}", action="store_true", help=on, **extra)
            group.add_argument(f"--no_{f.name}", f"--no-{f.name}", action="store_false", dest=f.name, help=off)
            continue
        if kind is list:
            extra["nargs"] = "+"
        else:
            extra["type"] = kind
        if "choices" in f.metadata:
            extra["choices"] = f.metadata["choices"]
        group.add_argument(f"--{f.name}", help=shown_text, **extra)


def group_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """``cls`` from the flags named like its fields (``None`` = not given: the field's default)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return cls(**{**values, **overrides})


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Every field of a training run's ``Settings`` (run, retrieval, policy, algorithm, trainer)."""
    for name, cls in GROUPS.items():
        add_group_flags(parser, cls, name)
    # the original's flag: --use_dummy is --policy dummy
    parser.add_argument("--use_dummy", dest="policy", action="store_const", const="dummy",
                        help="the LLM-free DummyRecPolicy (same as --policy dummy)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(**{name: group_from_args(cls, args) for name, cls in GROUPS.items()})
