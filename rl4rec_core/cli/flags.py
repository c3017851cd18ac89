"""Command-line flags generated from the settings (``rl4rec_core/settings/``): every command's settings flags.

One flag per field, with the field's name, default and help, so a setting is declared once and no
command drifts from another or from the flows, which take the same groups as parameters. A command
says which groups (and which of their fields) it takes in its ``SETTINGS`` table; the field's metadata
adds hidden aliases (``--dataset`` for ``--dataset_name``), shortcuts (``--use_dummy`` = ``--policy
dummy``) and list joining (``--datasets a b`` = ``--dataset_name a,b``). Only ``rl4rec_core.settings`` and
the standard library are imported: building a parser loads no torch or pandas.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from rl4rec_core.settings import ALL_GROUPS, default_of

# which fields of which groups a command takes as flags: {group: None (every field) or (field, ...)}
Selection = Mapping[str, "tuple[str, ...] | None"]


class _Join(argparse.Action):
    """``--datasets a b`` / ``--dataset_name a,b``: the words joined by the field's ``join`` separator."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const.join(values))


def _value_type(hint: Any) -> Any:
    """``int | None`` -> ``int``; ``list[str]`` -> ``list``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return typing.get_origin(hint) or hint


def _help(text: str, shown: Any) -> str:
    # the default goes in the help unless the text already says what happens without the flag
    return text if "default" in text or shown is None else f"{text} (default: {shown})"


def add_group_flags(parser: argparse.ArgumentParser, cls: type, title: str, fields: tuple[str, ...] | None = None,
                    given_only: bool = False, shown_defaults: Mapping[str, Any] | None = None) -> None:
    """Add one flag per field of ``cls`` (or of ``fields`` only).

    ``given_only``: every default is ``None`` so the caller can tell what was given (``rl4rec run`` fills the
    rest from a profile, ``rl4rec evaluate`` evaluates a policy only when one is named); ``shown_defaults``
    are then the defaults the help names.
    """
    group = parser.add_argument_group(f"{title} settings", (cls.__doc__ or "").strip().splitlines()[0])
    hints = typing.get_type_hints(cls)
    chosen = [f for f in dataclasses.fields(cls) if fields is None or f.name in fields]
    for f in chosen:
        default = default_of(f)
        shown = (shown_defaults or {}).get(f.name, default)
        text, meta = f.metadata.get("help", ""), f.metadata
        extra: dict[str, Any] = {"default": None if given_only else default, "dest": f.name}
        kind = _value_type(hints[f.name])
        if kind is bool:
            # --name / --no_name (and --no-name): the help shows the one that changes the default
            on, off = (text, argparse.SUPPRESS) if not shown else (argparse.SUPPRESS, f"switch off: {text}")
            group.add_argument(f"--{f.name}", action="store_true", help=on, **extra)
            group.add_argument(f"--no_{f.name}", f"--no-{f.name}", action="store_false", dest=f.name, help=off,
                               default=argparse.SUPPRESS)
            for alias in meta.get("aliases", ()):
                group.add_argument(alias, action="store_true", dest=f.name, default=argparse.SUPPRESS,
                                   help=argparse.SUPPRESS)
            continue
        if "join" in meta:
            extra.update(nargs="+", action=_Join, const=meta["join"])
        elif kind is list:
            extra["nargs"] = "*"
        else:
            extra["type"] = kind
        if "choices" in meta:
            extra["choices"] = meta["choices"]
        group.add_argument(f"--{f.name}", help=_help(text, shown), **extra)
        for alias in meta.get("aliases", ()):  # the original's names: same field, not shown twice in --help
            group.add_argument(alias, **{**extra, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS})
        for flag, value in meta.get("shortcuts", {}).items():
            group.add_argument(flag, dest=f.name, action="store_const", const=value, default=argparse.SUPPRESS,
                               help=f"same as --{f.name} {value}")


def add_settings_flags(parser: argparse.ArgumentParser, selection: Selection, given_only: tuple[str, ...] = (),
                       shown_defaults: Mapping[str, Any] | None = None) -> None:
    """The flags of ``selection``'s groups and fields; the groups in ``given_only`` default to ``None``."""
    for name, fields in selection.items():
        add_group_flags(parser, ALL_GROUPS[name], name, fields, given_only=name in given_only,
                        shown_defaults=shown_defaults)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (``None`` = not given)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def group_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """``cls`` from the flags named like its fields (not given: the field's default)."""
    return cls(**{**given(args, cls), **overrides})


def groups_from_args(args: argparse.Namespace, selection: Selection) -> dict[str, Any]:
    """``{group: object}`` of ``selection``'s groups from the flags (fields without a flag: their default)."""
    return {name: group_from_args(ALL_GROUPS[name], args) for name in selection}
