"""Which torch device a command runs on: ``auto``, ``cpu`` or ``cuda[:i]``, checked before anything loads.

One place for the rule the ``--device`` flags share (embed, serve, evaluate, the retrieval service and
its encoder): ``auto`` takes CUDA when this process sees a GPU, and an explicit CUDA device on a machine
without one is a ``ConfigError`` that names the fix, instead of a CUDA runtime error deep in a model load.
"""

from __future__ import annotations

import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import DEVICE_HELP



def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; any other name must parse and, if CUDA, exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"unknown device {device!r} ({e}); use {DEVICE_HELP}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(device)!r} requested but CUDA is not available on this machine (torch "
                f"{torch.__version__}); use --device cpu, or --device auto to take a GPU only when there is one"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} "
                              f"GPU(s); use cuda:0..cuda:{torch.cuda.device_count() - 1} or --device auto")
    return dev


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (``/proc/cpuinfo``; empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def cpu_has_fast_bf16() -> bool:
    """AMX: CPUs with bf16 matrix tiles. AVX512-BF16 alone is not enough: on such an Intel box bf16 autocast made
    a 32 x 12 GRPO step about 12x slower (118.8 s vs 9.4 s; docs/performance.md), and without either bf16 is
    emulated."""
    return "amx_bf16" in cpu_flags()
