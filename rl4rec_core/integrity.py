"""Reading checkpoint files without trusting them.

Checkpoints are shared artifacts (copied between machines, downloaded from MLflow, held by registry
models), so nothing in one may run code or fail with a raw traceback:

- ``load_torch`` loads ``.pt`` files with ``weights_only=True``: tensors and plain values only, never a
  pickled object (a pickle that would call ``os.system`` is refused before anything runs);
- ``read_json`` reads a JSON file;
- ``write_manifest`` records the size and sha256 of every file of a folder in ``manifest.json``
  (written last, inside the atomic folder write) and ``verify_manifest`` checks them on load.

Every failure is a one-line ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

from rl4rec_core.errors import DataError
from rl4rec_core.io import sha256_file, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FIX = "Fix: use another checkpoint of the run (a checkpoint_step_N folder), or copy this one again from its source"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # the refused class or function, as torch names it


def load_torch(path: str | Path, map_location: Any = None) -> Any:
    """A ``torch.save`` file, with ``weights_only=True`` (tensors, dicts, lists, numbers, strings)."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = _GLOBAL.search(str(e))
        what = f" ({found.group(1)})" if found else ""
        raise DataError(
            f"{path} holds Python objects{what} besides tensors and plain values, and loading them could run "
            f"code, so it was not loaded; rl4rec never writes such files. {FIX}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:  # truncated or not a torch file
        raise DataError(f"{path} is damaged ({_first_line(e)}). {FIX}") from None


def read_json(path: str | Path) -> Any:
    """A JSON file; a missing, truncated or non-UTF-8 one is a ``DataError`` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing. {FIX}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is damaged: not JSON ({_first_line(e)}). {FIX}") from None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """:func:`read_json` for files that hold one JSON object."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise DataError(f"{path} is damaged: it holds a JSON {type(value).__name__}, not an object. {FIX}")
    return value


def write_manifest(folder: str | Path) -> Path:
    """``folder/manifest.json``: relative path -> size and sha256 of every file below ``folder``.

    Call it last, when every other file of the folder is written.
    """
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST
    }
    write_json(folder / MANIFEST, {"format": MANIFEST_FORMAT, "files": files})
    return folder / MANIFEST


def verify_manifest(folder: str | Path) -> bool:
    """Check every file ``manifest.json`` lists; ``False`` when the folder has no manifest (older
    checkpoints), ``True`` when all match. A missing, resized or changed file is a ``DataError``."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        return False
    manifest = read_json_object(folder / MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise DataError(f"{folder / MANIFEST} is damaged: it has no 'files' table. {FIX}")
    for rel, entry in sorted(files.items()):
        path = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise DataError(f"{folder / MANIFEST} is damaged: it lists {rel!r}, outside the folder. {FIX}")
        if not isinstance(entry, dict) or not {"size", "sha256"} <= entry.keys():
            raise DataError(f"{folder / MANIFEST} is damaged: the entry of {rel} has no size and sha256. {FIX}")
        if not path.is_file():
            raise DataError(f"{path} is missing (the checkpoint's manifest lists it). {FIX}")
        size = path.stat().st_size
        if size != entry["size"]:
            raise DataError(f"{path} is damaged: {size} bytes, the manifest says {entry['size']}. {FIX}")
        if sha256_file(path) != entry["sha256"]:
            raise DataError(f"{path} is damaged: its sha256 differs from the manifest's. {FIX}")
    return True


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
