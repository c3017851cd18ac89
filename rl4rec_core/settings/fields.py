"""How a settings field is declared (``opt``) and the checks the groups share; standard library only.

A field's metadata is everything its flag needs (``rl4rec_core/cli/flags.py`` generates the flags):
``help``; optionally ``choices``, ``aliases`` (more option strings for the same field, e.g. the
original's ``--dataset``), ``shortcuts`` (flags that set one value, e.g. ``--use_dummy`` = ``--policy
dummy``) and ``join`` (a list flag joined into one string, ``--datasets a b`` = ``a,b``).
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import posixpath
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from rl4rec_core.errors import ConfigError


def opt(default: Any, help: str, **meta: Any) -> Any:
    """A settings field: its default, the help text of its flag and the flag's extras (see the module doc)."""
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def default_of(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def split_fields(flat: Mapping[str, Any], groups: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """Flat field names -> ``{group: {field: value}}`` over ``groups``; a name none of them has is an error."""
    known = set().union(*(field_names(cls) for cls in groups.values()))
    unknown = sorted(set(flat) - known)
    if unknown:
        raise ConfigError(f"unknown settings {unknown} for groups {', '.join(groups)}; the settings are the fields "
                          "of rl4rec_core/settings/")
    return {name: {k: v for k, v in flat.items() if k in field_names(cls)} for name, cls in groups.items()}


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"trainer": {"batch_size": 8}}`` -> ``{"trainer.batch_size": 8}``: the dotted names of settings
    (in MLflow params and in the differences a resume reports)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)} (--{name})")


def integer(name: str, value: Any, minimum: int = 1, hint: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {what}, got {value!r}; e.g. --{name} {max(minimum, 4)}{hint}")


def user_count(group: Any, name: str, hint: str = " (or 0 for every user)") -> None:
    """A frozen group's optional count of users: 0 (what a command line can say for "every user") becomes None,
    anything else must be a positive integer."""
    if getattr(group, name) == 0:
        object.__setattr__(group, name, None)
    if getattr(group, name) is not None:
        integer(name, getattr(group, name), hint=hint)


def number(name: str, value: Any, minimum: float = 0.0, strict: bool = False, example: str = "") -> None:
    """``value`` is a finite number ``>= minimum`` (``> minimum`` when ``strict``): ``inf`` and ``nan`` parse
    as floats and pass comparisons, then fail far from the flag (``invalid multinomial``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}; e.g. --{name} {example or minimum}")
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{name} must be a number {bound}, got {value!r}; e.g. --{name} {example or minimum}")


# what every raw file holds: field names, tabs, newlines, digits and letters beyond ASCII
_SAMPLE = "user_id:token\titem_id:token\n1\tAm\u00e9lie (2001)\n"


def check_encoding(encoding: str) -> str:
    """The canonical name of ``encoding`` (``latin-1`` -> ``iso8859-1``) when it can hold a data file (a
    sample with tabs, newlines and accents survives encoding and decoding), else a ``ConfigError`` naming
    the fix. ``idna`` and the like are text codecs for one domain label, not for files."""
    fix = "Fix: pass one such as utf-8 (the default), latin-1, cp1252 or utf-16"
    try:
        name = codecs.lookup(encoding).name
        if _SAMPLE.encode(encoding).decode(encoding) != _SAMPLE:
            raise UnicodeError("the sample did not survive")
    except (LookupError, TypeError):
        raise ConfigError(f"--encoding {encoding!r} is not a text encoding Python knows. {fix}") from None
    except (UnicodeError, ValueError) as e:
        raise ConfigError(f"--encoding {encoding!r} cannot hold a data file (tabs, newlines and accented letters "
                          f"do not survive it: {str(e)[:80]}). {fix}") from None
    return name


def check_reward(name: Any, known: tuple[str, ...], families: tuple[str, ...]) -> None:
    """A reward name the registry has (``known``, ``family@K``) or an import path ``pkg.module:function``,
    which is imported when the trainer starts, not here (settings never run user code)."""
    listing = ", ".join([*(f"{f}@K" for f in families), *known, "pkg.module:function"])
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"reward must be a name, got {name!r}; known rewards: {listing}")
    family, at, k = name.partition("@")
    if name in known or (at and family in families and k.isdigit() and int(k) > 0):
        return
    if at and family in families:
        raise ConfigError(f"reward {name!r}: the cut-off must be a positive integer, e.g. {family}@10")
    if ":" not in name and "." not in name:
        raise ConfigError(f"unknown reward {name!r}; known rewards: {listing}")


MAX_EXPERIMENT_CHARS = 500  # MLflow's MAX_EXPERIMENT_NAME_LENGTH


def check_mlflow_names(experiment: Any, model_name: Any) -> None:
    """An experiment and a registered model name (``{dataset}`` filled in) that MLflow accepts, checked when
    the flags are read rather than after the whole pipeline ran. MLflow's rules (``mlflow.utils.validation``,
    3.17) are repeated here because the settings do not import MLflow: an experiment is not empty and has at
    most 500 characters; a model name is not empty, has no '/' or ':' and is no path that resolves elsewhere."""
    if not isinstance(experiment, str) or not experiment.strip():
        raise ConfigError("experiment is empty; pass an MLflow experiment name, e.g. --experiment rl4rec")
    if len(experiment) > MAX_EXPERIMENT_CHARS:
        raise ConfigError(f"experiment has {len(experiment)} characters, MLflow takes at most {MAX_EXPERIMENT_CHARS}; "
                          f"pass a shorter --experiment")
    name = model_name.replace("{dataset}", "dataset") if isinstance(model_name, str) else ""
    norm = posixpath.normpath(name) if name else ""
    if not norm.strip() or "/" in name or ":" in name or norm != name or norm.startswith(".."):
        raise ConfigError(f"--model_name gives the registered model name {model_name!r}, which MLflow refuses: it must "
                          f"not be empty nor contain '/' or ':' (nor be a path such as '.' or '..'). Fix: pass e.g. "
                          f"--model_name rl4rec-{{dataset}}")
