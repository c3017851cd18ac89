"""A checkpoint's ``trainer_state.json`` checked before any of it is applied.

It holds the step, the user sampler's state, the global RNG states and the settings changes accepted by
``--override_config``. A crafted or damaged one must not start a run at step -5, at 1e30 (trains nothing)
or at 3.9 (``int()`` makes it 3), nor fail inside ``numpy``/``random``/``torch`` with a traceback, so every
field is checked for type and range first; each failure is a one-line ``DataError`` and ``--resume``
falls back to an older checkpoint.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch

from rl4rec_core.errors import DataError
from rl4rec_core.integrity import FIX

_STEP_FOLDER = re.compile(r"^checkpoint_step_(\d+)$")
_U32, _U128 = 2**32, 2**128
_MT_WORDS = 624  # Mersenne Twister state words (python's random, numpy's legacy generator)


class TrainerState(NamedTuple):
    step: int
    sampler: dict[str, Any]
    rng: dict[str, Any]
    config_changes: list[dict[str, Any]]


def _bad(path: Path, what: str) -> DataError:
    return DataError(f"{Path(path) / 'trainer_state.json'} is damaged: {what}. {FIX}")


def _int(value: Any, low: int, high: int) -> bool:
    """An integer (not a bool) in ``[low, high)``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _ints(values: Any, n: int, high: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(_int(v, 0, high) for v in values)


def check_step(path: Path, state: dict[str, Any], num_steps: int) -> int:
    """The step: an integer in ``[0, num_steps]`` (the run's length in its ``config.json``), and for a
    ``checkpoint_step_N`` folder, N itself."""
    step = state.get("step")
    if not _int(step, 0, num_steps + 1):
        raise _bad(path, f"step {str(step)[:40]} is not an integer in [0, {num_steps}] (the run's num_steps)")
    named = _STEP_FOLDER.match(Path(path).name)
    if named and int(named.group(1)) != step:
        raise _bad(path, f"step {step} in a folder named for step {named.group(1)}")
    return step


def check_sampler(path: Path, sampler: Any, like: dict[str, Any]) -> dict[str, Any]:
    """A numpy bit generator state of the sampler's kind (``PCG64``: 128-bit state and increment)."""
    ok = isinstance(sampler, dict) and sampler.get("bit_generator") == like["bit_generator"]
    inner = sampler.get("state") if ok else None
    ok = ok and isinstance(inner, dict) and set(inner) == set(like["state"])
    ok = ok and all(_int(v, 0, _U128) for v in inner.values())
    ok = ok and _int(sampler.get("has_uint32"), 0, 2) and _int(sampler.get("uinteger"), 0, _U32)
    if not ok:
        raise _bad(path, f"the user sampler's state is not a {like['bit_generator']} state")
    return sampler


def check_rng(path: Path, rng: Any) -> dict[str, Any]:
    """python's ``random`` (version 3, 624 words + position, gauss), numpy's legacy ``MT19937`` state and
    torch's CPU generator state, as :func:`~rl4rec_core.checkpoints.capture_rng` writes them."""
    if not isinstance(rng, dict) or not {"python", "numpy", "torch"} <= rng.keys():
        raise _bad(path, "no RNG state (python, numpy, torch)")
    py, np_state, th = rng["python"], rng["numpy"], rng["torch"]
    py_ok = isinstance(py, list) and len(py) == 3 and py[0] == 3 and isinstance(py[1], list) \
        and len(py[1]) == _MT_WORDS + 1 and _ints(py[1][:-1], _MT_WORDS, _U32) and _int(py[1][-1], 0, _MT_WORDS + 1) \
        and (py[2] is None or _finite(py[2]))
    np_ok = isinstance(np_state, list) and len(np_state) == 5 and np_state[0] == "MT19937" \
        and _ints(np_state[1], _MT_WORDS, _U32) and _int(np_state[2], 0, _MT_WORDS + 1) \
        and _int(np_state[3], 0, 2) and _finite(np_state[4])
    torch_ok = _ints(th, len(torch.get_rng_state()), 256)
    for name, ok in (("python", py_ok), ("numpy", np_ok), ("torch", torch_ok)):
        if not ok:
            raise _bad(path, f"its {name} RNG state is not one")
    return rng


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_trainer_state(path: Path, state: Any, num_steps: int, sampler_like: dict[str, Any]) -> TrainerState:
    """Every field of ``trainer_state.json`` checked; nothing is applied here."""
    if not isinstance(state, dict):
        raise _bad(path, "not an object")
    changes = state.get("config_changes", [])
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise _bad(path, "config_changes is not a list of records")
    return TrainerState(check_step(path, state, num_steps), check_sampler(path, state.get("sampler"), sampler_like),
                        check_rng(path, state.get("rng")), list(changes))
