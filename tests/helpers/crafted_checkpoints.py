"""Seeded generators of damaged and crafted training checkpoints (the dummy policy's), for the fuzz test of
``--resume`` and the hostile-checkpoint tests.

Each defect takes ``(rng, checkpoint folder)``, changes one thing in the folder so that it can never be
a valid checkpoint, and returns a label. A *crafted* defect then rewrites the manifest so that it agrees,
as an attacker's checkpoint would (a manifest detects damage; it is no signature), so the loader's own
checks must catch it; a *damage* defect leaves the manifest as it was.
"""

from __future__ import annotations

import json
import random
import struct
import zipfile
from pathlib import Path

INFLATED_BYTES = 1 << 30  # a tensor of 1 GiB declared by a file of about a megabyte
_MARKER_NUMEL = 12345  # a tensor length no real state has, to find it in the pickle


# ---------------------------------------------------------------- JSON files
def _json(path: Path):
    return json.loads(path.read_text())


def _put(path: Path, value) -> None:
    path.write_text(json.dumps(value))


def nested(depth: int, rng: random.Random) -> str:
    """JSON nested ``depth`` lists/objects deep."""
    kinds = [rng.random() < 0.5 for _ in range(depth)]
    return "".join("[" if k else '{"k":' for k in kinds) + "1" + "".join("]" if k else "}" for k in reversed(kinds))


JSON_FILES = ("trainer_state.json", "config.json", "policy/policy.json")


def deep_json(rng, ckpt):
    name = rng.choice(JSON_FILES + ("manifest.json",))
    depth = rng.choice((33, 40, 200, 990, 5000, 100_000))
    if rng.random() < 0.5:  # the whole file
        (ckpt / name).write_text(nested(depth, rng))
    else:  # one more key of the object
        text = (ckpt / name).read_text().rstrip()
        (ckpt / name).write_text(text[:-1] + ', "deep": ' + nested(depth, rng) + "}")
    return f"{name} nested {depth} deep"


def truncated_json(rng, ckpt):
    name = rng.choice(JSON_FILES)
    text = (ckpt / name).read_text().rstrip()
    (ckpt / name).write_text(text[: rng.randrange(0, len(text) - 1)])
    return f"{name} truncated"


def not_utf8_json(rng, ckpt):
    name = rng.choice(JSON_FILES)
    data = (ckpt / name).read_bytes()
    at = data.index(b'"') + 1
    (ckpt / name).write_bytes(data[:at] + rng.choice((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80")) + data[at:])
    return f"{name} not UTF-8"


def huge_int_json(rng, ckpt):
    name = rng.choice(JSON_FILES)
    text = (ckpt / name).read_text().rstrip()
    (ckpt / name).write_text(text[:-1] + ', "n": ' + "7" * rng.randrange(4301, 20000) + "}")
    return f"{name} with an integer of thousands of digits"


def json_scalar(rng, ckpt):
    name = rng.choice(JSON_FILES)
    (ckpt / name).write_text(rng.choice(("[1, 2]", '"text"', "42", "null", "true", "[]")))
    return f"{name} not an object"


BAD_STEPS = (-5, 1e30, 3.9, "12", True, None, 13, 2**70, [12], {"n": 12})


def bad_step(rng, ckpt):
    state = _json(ckpt / "trainer_state.json")
    state["step"] = rng.choice(BAD_STEPS)
    _put(ckpt / "trainer_state.json", state)
    return f"step {state['step']!r}"


def bad_sampler(rng, ckpt):
    state = _json(ckpt / "trainer_state.json")
    sampler = state["sampler"]
    what = rng.choice(("name", "negative", "huge", "text", "flag", "missing", "extra", "not a dict"))
    if what == "name":
        sampler["bit_generator"] = rng.choice(("MT19937", "Philox", "", 7))
    elif what in ("negative", "huge", "text"):
        sampler["state"][rng.choice(("state", "inc"))] = {"negative": -1, "huge": 2**200, "text": "x"}[what]
    elif what == "flag":
        sampler["has_uint32"] = rng.choice((2, -1, 0.5, "0"))
    elif what == "missing":
        del sampler[rng.choice(sorted(sampler))]
    elif what == "extra":
        sampler["state"]["seed"] = 1
    else:
        state["sampler"] = rng.choice((3, [], "PCG64"))
    _put(ckpt / "trainer_state.json", state)
    return f"sampler state: {what}"


def bad_rng(rng, ckpt):
    state = _json(ckpt / "trainer_state.json")
    which = rng.choice(("python", "numpy", "torch"))
    value = state["rng"][which]
    what = rng.choice(("short", "out of range", "wrong type", "missing"))
    if what == "missing":
        del state["rng"][which]
    elif which == "torch":
        value[:] = value[:-1] if what == "short" else value
        if what == "out of range":
            value[rng.randrange(len(value))] = rng.choice((256, -1, 2**40))
        elif what == "wrong type":
            value[rng.randrange(len(value))] = rng.choice(("a", 1.5, None))
    else:
        words = value[1]
        if what == "short":
            words.pop()
        elif what == "out of range":
            words[rng.randrange(len(words) - 1)] = rng.choice((2**32, -1, 2**100))
        else:
            value[0] = rng.choice((None, 2, "x"))
    _put(ckpt / "trainer_state.json", state)
    return f"{which} RNG state: {what}"


def bad_config_changes(rng, ckpt):
    state = _json(ckpt / "trainer_state.json")
    state["config_changes"] = rng.choice(({"step": 1}, [1, 2], "none", [None]))
    _put(ckpt / "trainer_state.json", state)
    return "config_changes not a list of records"


BAD_VALUES = (("trainer", "batch_size", -3), ("trainer", "num_steps", "12"), ("algorithm", "group_size", 0),
              ("run", "seed", -1), ("retrieval", "scorer", "magic"), ("policy", "policy", "robot"),
              ("algorithm", "learning_rate", -1.0), ("run", "dataset_name", ""))


def bad_settings(rng, ckpt):
    config = _json(ckpt / "config.json")
    what = rng.choice(("list", "text", "unknown field", "bad value"))
    group = rng.choice(("run", "trainer", "algorithm", "policy", "retrieval"))
    if what == "bad value":
        group, field, value = rng.choice(BAD_VALUES)
        config[group][field] = value
    elif what == "unknown field":
        config[group]["no_such_setting"] = 1
    else:
        config[group] = [1, 2] if what == "list" else "x"
    _put(ckpt / "config.json", config)
    return f"config.json {group}: {what}"


def bad_policy_json(rng, ckpt):
    path = ckpt / "policy" / "policy.json"
    meta = _json(path)
    config = meta["config"]
    what = rng.choice(("another vocabulary", "huge vocabulary", "vocab not a list", "dummy_words", "learning_rate",
                       "another kind", "algorithm", "config"))
    if what == "another vocabulary":
        meta["vocab"][rng.randrange(len(meta["vocab"]))] = "zzzunseen"
    elif what == "huge vocabulary":
        meta["vocab"] = [f"w{i}" for i in range(rng.choice((5000, 100_000)))]
    elif what == "vocab not a list":
        meta["vocab"] = rng.choice(("words", 3, None))
    elif what == "dummy_words":
        config["policy"]["dummy_words"] = rng.choice((0, 10**9, "6", 2.5))
    elif what == "learning_rate":
        config["algorithm"]["learning_rate"] = rng.choice(("x", True, -1.0))
    elif what == "another kind":
        meta["kind"] = rng.choice(("llm", None, 3))
    elif what == "algorithm":
        config["algorithm"] = rng.choice(({"no_such": 1}, [1], {"algorithm": "magic"}))
    else:
        meta["config"] = rng.choice(({"policy": "x"}, {**config, "seed": "s"}, {**config, "seed": 2**70},
                                     {**config, "device": 3}, None))
    _put(path, meta)
    return f"policy.json: {what}"


def bad_manifest(rng, ckpt):
    path = ckpt / "manifest.json"
    manifest = _json(path)
    files = manifest["files"]
    name = rng.choice(sorted(files))
    what = rng.choice(("size", "sha256", "outside", "absolute", "nul", "no table", "entry", "missing file"))
    if what == "size":
        files[name]["size"] = rng.choice((files[name]["size"] + 1, -1, "big", 10**30))
    elif what == "sha256":
        files[name]["sha256"] = "0" * 64
    elif what in ("outside", "absolute", "nul"):
        files[{"outside": "../../etc/passwd", "absolute": "/etc/passwd", "nul": "policy/st\x00ate.pt"}[what]] = \
            {"size": 1, "sha256": "0" * 64}
    elif what == "no table":
        manifest["files"] = rng.choice(([], "x", None))
    elif what == "entry":
        files[name] = rng.choice(({"size": 1}, [], "x"))
    else:
        files["policy/extra.pt"] = {"size": 1, "sha256": "0" * 64}
    _put(path, manifest)
    return f"manifest: {what}"


# ---------------------------------------------------------------- the policy's state.pt
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


# ---------------------------------------------------------------- the cases
CRAFTED = (deep_json, truncated_json, not_utf8_json, huge_int_json, json_scalar, bad_step, bad_sampler, bad_rng,
           bad_config_changes, bad_settings, bad_policy_json, bad_weights, bad_optimizer, bad_baseline_or_generator,
           bad_state_form, broken_torch_file, declared_bigger_than_its_record)
DAMAGE = (bad_manifest,)  # the manifest itself: left as the defect made it


def refresh(ckpt: Path) -> None:
    from rl4rec_core.integrity import MANIFEST, write_manifest

    if (ckpt / MANIFEST).exists():
        write_manifest(ckpt)


def apply(rng: random.Random, ckpt: Path, defect, crafted: bool) -> str:
    label = defect(rng, ckpt)
    if crafted and defect not in DAMAGE and "manifest" not in label:  # a defect of the manifest stays
        refresh(ckpt)
    return label


def pick(rng: random.Random):
    """A defect, with its weight: every kind often, the slow inflating record now and then."""
    if rng.random() < 0.03:
        return inflating_record
    return rng.choice(CRAFTED + DAMAGE)

