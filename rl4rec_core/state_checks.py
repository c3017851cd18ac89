"""A loaded training state checked against the model it is meant for, before any of it is applied.

``torch.load(weights_only=True)`` makes a file safe to *read*; it says nothing about whether its tensors
fit the model. Applied unchecked, a tensor of the wrong shape is a ``RuntimeError`` traceback inside
``load_state_dict`` (or is silently broadcast by ``copy_``), and an optimizer dict of the wrong form a
``KeyError``. Every check here raises a one-line ``DataError`` naming the file, so ``--resume`` can fall
back to an older checkpoint; nothing is changed before all checks pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rl4rec_core.errors import DataError
from rl4rec_core.integrity import FIX

SLACK_BYTES = 16 * 1024 * 1024  # pickled structure, RNG states and counters beside the tensors


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def state_bound(params, copies: int) -> int:
    """The most bytes a saved state of ``copies`` tensors per parameter may hold (weights, Adam moments)."""
    return copies * tensor_bytes(params) + SLACK_BYTES


def _where(path: Path, name: str) -> str:
    return f"{path} ({name})"


def check_tensor(path: Path, name: str, value: Any, like: torch.Tensor) -> None:
    """``value`` is a tensor of ``like``'s shape and dtype."""
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{_where(path, name)} is damaged: a {type(value).__name__}, not a tensor. {FIX}")
    # a float tensor of another precision is cast on load (a run trained in bf16 on a GPU, evaluated on a CPU)
    same_kind = value.dtype == like.dtype or (value.is_floating_point() and like.is_floating_point())
    if tuple(value.shape) != tuple(like.shape) or not same_kind:
        raise DataError(
            f"{_where(path, name)} is damaged or for another model: {value.dtype} {tuple(value.shape)}, but this "
            f"model needs {like.dtype} {tuple(like.shape)}. {FIX}")


def check_tensors(path: Path, state: Mapping[str, Any], expected: Mapping[str, torch.Tensor],
                  optional: frozenset[str] = frozenset()) -> None:
    """Every name of ``expected`` (but ``optional``) is in ``state`` with its shape and dtype; no other name."""
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state) - optional)
    if unexpected or missing:
        raise DataError(f"{path} does not match this model (missing {missing[:3]}, unexpected {unexpected[:3]}). {FIX}")
    for name, value in state.items():
        check_tensor(path, name, value, expected[name])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.ndim == 0):
        return "number"
    if isinstance(value, (tuple, list)):
        return "sequence"
    return type(value).__name__


def check_optimizer_state(path: Path, saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """``saved`` has ``optimizer.state_dict()``'s form: the same groups over the same parameters, finite
    hyper-parameters of the same kinds, and per-parameter state tensors that are scalars or of the
    parameter's shape and dtype (Adam's ``step``, ``exp_avg``, ``exp_avg_sq``; SGD's momentum)."""
    where = _where(path, "optimizer")
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or \
            not isinstance(saved.get("param_groups"), list):
        raise DataError(f"{where} is damaged: not an optimizer state (state, param_groups). {FIX}")
    ref = optimizer.state_dict()["param_groups"]
    if len(saved["param_groups"]) != len(ref):
        raise DataError(f"{where} has {len(saved['param_groups'])} parameter groups, this model {len(ref)}. {FIX}")
    params = {}
    for group, ref_group, live in zip(saved["param_groups"], ref, optimizer.param_groups):
        _check_group(where, group, ref_group)
        params.update(zip(ref_group["params"], live["params"]))
    for key, entry in saved["state"].items():
        if key not in params or not isinstance(entry, dict):
            raise DataError(f"{where} is damaged: state for unknown parameter {str(key)[:40]!r}. {FIX}")
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                check_tensor(path, f"optimizer state {key}.{name}", value, params[key])
            elif _kind(value) != "number" or not math.isfinite(float(value)):
                raise DataError(f"{where} is damaged: state {key}.{str(name)[:40]} is {str(value)[:40]}. {FIX}")


def _check_group(where: str, group: Any, ref: dict[str, Any]) -> None:
    if not isinstance(group, dict) or group.get("params") != ref["params"]:
        raise DataError(f"{where} is damaged or for another model: its parameter groups differ from this "
                        f"model's. {FIX}")
    unknown = sorted(str(k)[:40] for k in group if k not in ref)
    if unknown:
        raise DataError(f"{where} is damaged: its parameter group has unknown settings {unknown[:3]}. {FIX}")
    for key, value in ref.items():
        if key == "params" or key not in group:
            continue
        if _kind(group[key]) != _kind(value) and value is not None:
            raise DataError(f"{where} is damaged: {key} is {str(group[key])[:40]}. {FIX}")
        if _kind(value) == "number" and not math.isfinite(float(group[key])):
            raise DataError(f"{where} is damaged: {key} is {group[key]}. {FIX}")


def check_baseline_state(path: Path, saved: Any) -> None:
    """A REINFORCE baseline's ``{"momentum": [0, 1), "value": finite or None, "count": int >= 0}``."""
    where = _where(path, "baseline")
    ok = isinstance(saved, dict) and _finite(saved.get("momentum")) and 0 <= saved["momentum"] < 1
    ok = ok and (saved.get("value") is None or _finite(saved["value"]))
    count = saved.get("count") if isinstance(saved, dict) else None
    if not ok or not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DataError(f"{where} is damaged: not a baseline state (momentum, value, count). {FIX}")


def check_count(path: Path, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DataError(f"{_where(path, name)} is damaged: {str(value)[:40]} is not a count. {FIX}")
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def owned(state: Any) -> Any:
    """``state`` with every tensor copied out of the memory-mapped file it was loaded from."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, dict):
        return {k: owned(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(owned(v) for v in state)
    return state
