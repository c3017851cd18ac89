"""A pretend accelerator for CPU-only machines: tensors that say they live on ``meta`` but hold real CPU values.

Why not the real ``meta`` device or ``FakeTensorMode(device="cuda")``: neither holds values, so the
service cannot run on them at all (``bool(x.any())``, ``nonzero`` and ``.item()`` raise), and ``meta``
lets a CPU index tensor index a meta tensor silently. Here every tensor moved to ``meta``
(``.to("meta")``, ``device="meta"``) is computed on the CPU but tagged as "on the device", every
result of a tagged input stays tagged, and ``.cpu()`` / ``.to("cpu")`` untag. An operation that
gets a tagged tensor together with a non-scalar untagged one raises :class:`DeviceMix` — what CUDA
raises for a comparison or matmul of ``cuda:0`` and ``cpu`` tensors ("Expected all tensors to be on
the same device"). It is stricter than CUDA in one place: CUDA accepts CPU index tensors on a CUDA
tensor (at the price of a blocking host-to-device copy per call), this refuses them, so indices are
built where the data is. ``numpy()`` of a tagged tensor raises, as on CUDA.

Usage::

    with PretendDevice():
        service = RetrievalService(..., device=PRETEND)   # items are tagged
        out = service.compute_rewards(...)                # any device mix raises DeviceMix
    assert not on_device(out.rewards)                     # results come back as CPU tensors
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

PRETEND = torch.device("meta")


class DeviceMix(AssertionError):
    """A tensor on the pretend device met a CPU tensor (CUDA would fail, or copy the CPU one each call)."""


class _OnDevice(torch.Tensor):
    """A CPU tensor tagged as living on the pretend device (the mode below does all the work)."""

    __torch_function__ = torch._C._disabled_torch_function_impl


def on_device(x) -> bool:
    """True when ``x`` is a tensor still on the pretend device (it did not come back with ``.cpu()``)."""
    return isinstance(x, _OnDevice)


def _tensors(x, out: list) -> list:
    """Every tensor in a call's (nested) arguments: lists for torch.cat, index tuples, slices, kwargs."""
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _tensors(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _tensors(v, out)
    elif isinstance(x, slice):
        _tensors([x.start, x.stop, x.step], out)
    return out


def _is_pretend(device) -> bool:
    return isinstance(device, (str, torch.device)) and torch.device(device).type == PRETEND.type


def _to_cpu_args(x):
    """Untag tensors and turn the pretend device into ``cpu``, recursively, for the real call."""
    if isinstance(x, _OnDevice):
        return x.as_subclass(torch.Tensor)
    if isinstance(x, torch.device) and x.type == PRETEND.type:
        return torch.device("cpu")
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_to_cpu_args(v) for v in x)
    if isinstance(x, dict):
        return {k: _to_cpu_args(v) for k, v in x.items()}
    return x


def _tag(x):
    if isinstance(x, torch.Tensor):
        return x.as_subclass(_OnDevice)
    if type(x) in (list, tuple) or hasattr(type(x), "n_fields"):  # also torch.return_types (topk, ...)
        return type(x)([_tag(v) for v in x])
    return x  # torch.Size and other values


def _target(func, args, kwargs, tagged_in: bool) -> bool:
    """Whether the result lives on the pretend device."""
    if func is torch.Tensor.cpu:
        return False
    if func is torch.Tensor.to:
        dests = [a for a in (*args[1:], kwargs.get("device")) if isinstance(a, (str, torch.device, torch.Tensor))]
        if not dests:
            return tagged_in  # .to(dtype) keeps the device
        dest = dests[0]
        return on_device(dest) if isinstance(dest, torch.Tensor) else _is_pretend(dest)
    if kwargs.get("device") is not None:
        return _is_pretend(kwargs["device"])
    return tagged_in


def _devices_to_cpu(func, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The call with the pretend device spelled ``cpu`` (``.to("meta")``, ``device="meta"``)."""
    if func is torch.Tensor.to:
        args = tuple("cpu" if isinstance(a, str) and _is_pretend(a) else a for a in args)
    if isinstance(kwargs.get("device"), str) and _is_pretend(kwargs["device"]):
        kwargs = {**kwargs, "device": "cpu"}
    return args, kwargs


class PretendDevice(TorchFunctionMode):
    """Inside this context, ``meta`` is a device whose tensors hold CPU values; device mixes raise."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.device:  # naming the pretend device is no computation
            return func(*args, **kwargs)
        if func == torch.Tensor.device.__get__ and on_device(args[0]):  # a new method-wrapper each time: ==
            return PRETEND
        if func in (torch.Tensor.numpy, torch.Tensor.__array__) and on_device(args[0]):
            raise DeviceMix("numpy() of a device tensor: call .cpu() first (CUDA refuses it too)")
        if func is torch.Tensor.cuda:
            raise DeviceMix("tensor.cuda() in library code: move tensors with .to(self.device) instead")
        tensors = _tensors([args, kwargs], [])
        tagged = any(on_device(t) for t in tensors)
        if tagged and func not in (torch.Tensor.to, torch.Tensor.cpu):
            cpu = [tuple(t.shape) for t in tensors if not on_device(t) and t.dim() > 0]
            if cpu:  # CPU scalars (0-dim) may meet CUDA tensors; anything bigger may not
                name = getattr(func, "__qualname__", None) or getattr(func, "__name__", str(func))
                raise DeviceMix(f"{name}: tensors on the device met CPU tensors of shapes {cpu}; "
                                f"create or move them with device=...")
        result_on_device = _target(func, args, kwargs, tagged)
        args, kwargs = _devices_to_cpu(func, args, kwargs)
        result = func(*_to_cpu_args(args), **_to_cpu_args(kwargs))
        return _tag(result) if result_on_device else result
