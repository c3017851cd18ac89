"""Checkpoint files read without trust: no unpickled code, a manifest of sizes and hashes, one-line errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

from rl4rec_core.errors import DataError
from rl4rec_core.integrity import MANIFEST, load_torch, read_json_object, verify_manifest, write_manifest
from tests.helpers.hostile import plant_pickle, truncate


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and "Fix:" in text
    return text


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    bad = plant_pickle(tmp_path / "state.pt", marker, refresh_manifest=False)
    with pytest.raises(DataError) as e:
        load_torch(bad)
    assert not marker.exists()
    text = _one_line(e)
    assert str(bad) in text and "could run code" in text and "system" in text


def test_tensors_and_plain_values_load(tmp_path):
    torch.save({"w": torch.ones(2), "n": 3, "s": [1.5, None, "x"]}, tmp_path / "ok.pt")
    state = load_torch(tmp_path / "ok.pt")
    assert state["n"] == 3 and torch.equal(state["w"], torch.ones(2)) and state["s"] == [1.5, None, "x"]


def test_a_truncated_torch_file_or_json_file_is_a_one_line_error(tmp_path):
    torch.save({"w": torch.ones(100)}, tmp_path / "t.pt")
    with pytest.raises(DataError, match="t.pt is damaged") as e:
        load_torch(truncate(tmp_path / "t.pt"))
    _one_line(e)
    (tmp_path / "c.json").write_text('{"run": {"se')
    with pytest.raises(DataError, match="c.json is damaged: not JSON") as e:
        read_json_object(tmp_path / "c.json")
    _one_line(e)
    (tmp_path / "l.json").write_text("[1]")
    with pytest.raises(DataError, match="not an object"):
        read_json_object(tmp_path / "l.json")
    (tmp_path / "b.json").write_bytes(b'{"a": "\xe9"}')  # latin-1, not UTF-8
    with pytest.raises(DataError, match="b.json is damaged"):
        read_json_object(tmp_path / "b.json")


def _folder(tmp_path):
    folder = tmp_path / "ckpt"
    (folder / "policy").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "policy" / "state.pt").write_bytes(b"0123456789")
    write_manifest(folder)
    return folder


def test_manifest_lists_every_file_and_verifies(tmp_path):
    folder = _folder(tmp_path)
    files = json.loads((folder / MANIFEST).read_text())["files"]
    assert sorted(files) == ["config.json", "policy/state.pt"] and files["policy/state.pt"]["size"] == 10
    assert verify_manifest(folder) is True
    assert verify_manifest(tmp_path) is False  # no manifest (an older checkpoint): nothing to verify


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: (f / "policy" / "state.pt").write_bytes(b"0123456780"), "sha256 differs"),
        (lambda f: truncate(f / "policy" / "state.pt"), "5 bytes, the manifest says 10"),
        (lambda f: os.remove(f / "config.json"), "config.json is missing"),
        (lambda f: truncate(f / MANIFEST), "manifest.json is damaged"),
        (lambda f: (f / MANIFEST).write_text('{"files": {"../x": {"size": 1, "sha256": "0"}}}'), "outside the folder"),
    ],
)
def test_manifest_catches_damage(tmp_path, damage, match):
    folder = _folder(tmp_path)
    damage(folder)
    with pytest.raises(DataError, match=match) as e:
        verify_manifest(folder)
    _one_line(e)


def test_no_code_in_the_project_unpickles_a_file():
    """Every torch.load passes weights_only=True; nothing calls pickle.load(s) or torch.load(weights_only=False)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    bad = []
    for folder in ("rl4rec_core", "tasks", "flows", "benchmarks", "scripts"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
                name = f"{owner}.{node.func.attr}"
                safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                if (name == "torch.load" and not safe) or name in ("pickle.load", "pickle.loads"):
                    bad.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert bad == []
