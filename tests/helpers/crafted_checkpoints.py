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
from pathlib import Path

from tests.helpers.crafted_state import (bad_baseline_or_generator, bad_optimizer, bad_state_form, bad_weights,
                                         broken_torch_file, declared_bigger_than_its_record, inflating_record)


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

