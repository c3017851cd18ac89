"""Seeded defects of the dummy policy's ``state.pt`` (a torch file), for tests/helpers/crafted_checkpoints.py:
tensors of the wrong shape or dtype, optimizer and baseline states of the wrong form, broken torch files, and
files that declare a 1 GiB tensor (with a record smaller than that, or one that inflates to it)."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

INFLATED_BYTES = 1 << 30  # a tensor of 1 GiB declared by a file of about a megabyte
_MARKER_NUMEL = 12345  # a tensor length no real state has, to find it in the pickle


def _state(ckpt):
    import torch

    return torch.load(ckpt / "policy" / "state.pt", weights_only=True)


def _save_state(ckpt, state) -> None:
    import torch

    torch.save(state, ckpt / "policy" / "state.pt")


def bad_weights(rng, ckpt):
    import torch

    state = _state(ckpt)
    name = rng.choice(("bias", "weight"))
    v = state["bias"].shape[0]
    what = rng.choice(("shape", "scalar", "dtype", "not a tensor", "missing"))
    if what == "shape":
        state[name] = torch.zeros(v + rng.choice((-1, 1, 7))) if name == "bias" else torch.zeros(v, v + 1)
    elif what == "scalar":
        state[name] = torch.tensor(1.0)
    elif what == "dtype":
        state[name] = state[name].to(torch.int64)
    elif what == "not a tensor":
        state[name] = rng.choice(([1.0] * v, "weights", None))
    else:
        del state[name]
    _save_state(ckpt, state)
    return f"state.pt {name}: {what}"


def bad_optimizer(rng, ckpt):
    import torch

    state = _state(ckpt)
    opt = state["optimizer"]
    group, v = opt["param_groups"][0], state["bias"].shape[0]
    what = rng.choice(("no state", "no groups", "two groups", "params", "lr", "betas", "state shape",
                       "unknown param", "state value", "extra setting", "not a dict"))
    if what == "no state":
        del opt["state"]
    elif what == "no groups":
        opt["param_groups"] = []
    elif what == "two groups":
        opt["param_groups"].append(dict(group))
    elif what == "params":
        group["params"] = rng.choice(([0], [5, 6], [1, 0], "all"))
    elif what == "lr":
        group["lr"] = rng.choice((float("nan"), float("inf"), "x", None))
    elif what == "betas":
        group["betas"] = rng.choice(("x", 0.9))
    elif what == "state shape":
        opt["state"][rng.choice(sorted(opt["state"]))]["exp_avg"] = torch.zeros(v + 3)
    elif what == "unknown param":
        opt["state"][7] = {"step": torch.tensor(1.0)}
    elif what == "state value":
        opt["state"][0]["exp_avg_sq"] = rng.choice(("x", float("nan"), [1.0]))
    elif what == "extra setting":
        group["deep"] = [[[[1]]]]
    else:
        state["optimizer"] = rng.choice(([1], "adam", torch.zeros(3)))
    _save_state(ckpt, state)
    return f"state.pt optimizer: {what}"


def bad_baseline_or_generator(rng, ckpt):
    import torch

    state = _state(ckpt)
    what = rng.choice(("momentum", "value", "count", "baseline", "generator size", "generator dtype", "generator"))
    if what == "momentum":
        state["baseline"]["momentum"] = rng.choice((5.0, float("nan"), "x"))
    elif what == "value":
        state["baseline"]["value"] = rng.choice(("x", float("inf"), [1]))
    elif what == "count":
        state["baseline"]["count"] = rng.choice((-1, "3", 2.5))
    elif what == "baseline":
        state["baseline"] = rng.choice(([1], None, "ema"))
    elif what == "generator size":
        state["generator"] = state["generator"][: rng.randrange(1, len(state["generator"]))]
    elif what == "generator dtype":
        state["generator"] = state["generator"].to(torch.float32)
    else:
        state["generator"] = rng.choice((None, [1, 2], "g"))
    _save_state(ckpt, state)
    return f"state.pt {what}"


def bad_state_form(rng, ckpt):
    import torch

    what = rng.choice(("list", "tensor", "number", "missing key", "deep"))
    state = _state(ckpt)
    if what == "missing key":
        del state[rng.choice(sorted(state))]
    elif what == "deep":
        deep: list = []
        for _ in range(rng.choice((200, 450))):
            deep = [deep]
        state["baseline"] = deep
    else:
        state = {"list": [state["bias"]], "tensor": torch.zeros(3), "number": 7}[what]
    _save_state(ckpt, state)
    return f"state.pt: {what}"


def broken_torch_file(rng, ckpt):
    path = ckpt / "policy" / "state.pt"
    data = path.read_bytes()
    what = rng.choice(("random bytes", "truncated", "zip without data", "empty", "pickle garbage"))
    if what == "random bytes":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000))))
    elif what == "truncated":
        path.write_bytes(data[: rng.randrange(1, len(data) - 1)])
    elif what == "empty":
        path.write_bytes(b"")
    else:
        _rewrite_zip(path, drop_data=what == "zip without data", pickle=b"\x80\x02garbage.")
    return f"state.pt: {what}"


def _rewrite_zip(path: Path, drop_data: bool, pickle: bytes) -> None:
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for name, data in files.items():
            if drop_data and "/data/" in name:
                continue
            out.writestr(name, pickle if name.endswith("data.pkl") and not drop_data else data)


def declared_bigger_than_its_record(rng, ckpt):
    """The pickle declares a tensor far larger than the bytes stored for it."""
    _resize_marker(ckpt, INFLATED_BYTES // 4, inflate=False)
    return "state.pt declares 1 GiB, stores 48 KB"


_INFLATING: dict[str, bytes] = {}  # made once per process (deflating 1 GiB of zeros takes seconds)


def inflating_record(rng, ckpt):
    """A ~1 MB file whose compressed record inflates to a 1 GiB tensor."""
    path = ckpt / "policy" / "state.pt"
    if "file" not in _INFLATING:
        _resize_marker(ckpt, INFLATED_BYTES // 4, inflate=True)
        _INFLATING["file"] = path.read_bytes()
    path.write_bytes(_INFLATING["file"])
    return "state.pt: a compressed record of 1 GiB"


def _resize_marker(ckpt, numel: int, inflate: bool) -> None:
    """Save the state with ``bias`` replaced by a tensor of a marker length, then make its declared length
    ``numel`` (float32) in the pickle; with ``inflate`` its record becomes ``numel`` zeros, deflated
    (streamed: never ``numel`` floats in memory)."""
    import torch

    state = _state(ckpt)
    state["bias"] = torch.zeros(_MARKER_NUMEL)
    path = ckpt / "policy" / "state.pt"
    torch.save(state, path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    pkl = next(n for n in files if n.endswith("data.pkl"))
    marker = b"M" + struct.pack("<H", _MARKER_NUMEL)
    assert files[pkl].count(marker) == 2, "the marker length must appear as the storage's and the tensor's size"
    files[pkl] = files[pkl].replace(marker, b"J" + struct.pack("<i", numel))
    record = next(n for n, d in files.items() if "/data/" in n and len(d) == _MARKER_NUMEL * 4)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for name, data in files.items():
            if name != record or not inflate:
                out.writestr(name, data)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(info, "w", force_zip64=True) as f:
                chunk = bytes(1 << 24)
                for _ in range(numel * 4 // len(chunk)):
                    f.write(chunk)
