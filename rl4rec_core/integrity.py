"""Reading checkpoint files without trusting them.

Checkpoints are shared artifacts (copied between machines, downloaded from MLflow, held by registry
models), so nothing in one may run code or fail with a raw traceback:

- ``load_torch`` loads ``.pt`` files with ``weights_only=True``: tensors and plain values only, never a
  pickled object (a pickle that would call ``os.system`` is refused before anything runs);
- ``load_torch(..., max_bytes=)`` first bounds what the file may allocate by what the model needs;
- ``read_json`` reads a JSON file of bounded size and depth;
- ``write_manifest`` records the size and sha256 of every file of a folder in ``manifest.json``
  (written last, inside the atomic folder write) and ``verify_manifest`` checks them on load.

Every failure is a one-line ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from rl4rec_core.errors import DataError
from rl4rec_core.io import sha256_file, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FIX = "Fix: use another checkpoint of the run (a checkpoint_step_N folder), or copy this one again from its source"
# rl4rec's checkpoint JSON (settings, RNG states, manifests) is kilobytes and a few levels deep
MAX_JSON_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 32
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # the refused class or function, as torch names it


def load_torch(path: str | Path, map_location: Any = None, max_bytes: int | None = None) -> Any:
    """A ``torch.save`` file, with ``weights_only=True`` (tensors, dicts, lists, numbers, strings).

    ``max_bytes``: what the caller's model can need. The file, and every tensor it declares, must fit in
    it before anything is allocated: the zip's records must be stored (torch never compresses them; a
    compressed record of zeros would inflate a 1 MB file into gigabytes), and the file is memory-mapped,
    so a tensor that declares more bytes than its record holds is refused, not allocated.
    """
    import torch

    path = Path(path)
    if max_bytes is not None:
        check_torch_archive(path, max_bytes)
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=max_bytes is not None)
    except pickle.UnpicklingError as e:
        found = _GLOBAL.search(str(e))
        what = f" ({found.group(1)})" if found else ""
        raise DataError(
            f"{path} holds Python objects{what} besides tensors and plain values, and loading them could run "
            f"code, so it was not loaded; rl4rec never writes such files. {FIX}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, IndexError, OverflowError,
            RecursionError, MemoryError) as e:  # truncated, crafted, or not a torch file
        raise DataError(f"{path} is damaged ({_first_line(e)}). {FIX}") from None


def check_torch_archive(path: Path, max_bytes: int) -> None:
    """Refuse a torch file that is bigger than ``max_bytes`` or whose records are compressed or add up
    to more than that: read from the zip's directory, before torch allocates anything."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DataError(f"{path} is {size:,} bytes, more than the {max_bytes:,} this model's state can take. {FIX}")
        with zipfile.ZipFile(path) as z:
            records = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is damaged: not a torch archive ({_first_line(e)}). {FIX}") from None
    packed = [r.filename for r in records if r.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise DataError(f"{path} is damaged: record {packed[0]!r} is compressed, which torch.save never does "
                        f"(a compressed record can inflate to any size). {FIX}")
    declared = sum(r.file_size for r in records)
    if declared > max_bytes:
        raise DataError(f"{path} declares {declared:,} bytes of records, more than the {max_bytes:,} this "
                        f"model's state can take. {FIX}")


def read_json(path: str | Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file; a missing, truncated, non-UTF-8, oversized or too deeply nested one is a ``DataError``
    naming it (never a ``RecursionError``, nor an integer of thousands of digits)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise DataError(f"{path} is missing. {FIX}") from None
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e}). {FIX}") from None
    if len(raw) > max_bytes:
        raise DataError(f"{path} is damaged: over {max_bytes:,} bytes, more than any rl4rec JSON file. {FIX}")
    too_deep = DataError(f"{path} is damaged: it nests lists or objects more than {MAX_JSON_DEPTH} deep. {FIX}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, and an integer of over 4300 digits
        raise DataError(f"{path} is damaged: not JSON ({_first_line(e)}). {FIX}") from None
    if nesting(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


def nesting(value: Any) -> int:
    """How deeply ``value`` nests lists and dicts, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item if isinstance(child, (list, dict)))
    return deepest


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
        try:
            _verify_entry(folder, rel, entry)
        except ValueError as e:  # a path with a NUL byte, or another the file system cannot name
            if isinstance(e, DataError):
                raise
            raise DataError(f"{folder / MANIFEST} is damaged: it lists {_cut(rel)}, which is no file name. {FIX}") from None
    return True


def _verify_entry(folder: Path, rel: str, entry: Any) -> None:
    path = folder / rel
    if not rel or ".." in Path(rel).parts or Path(rel).is_absolute():
        raise DataError(f"{folder / MANIFEST} is damaged: it lists {_cut(rel)}, outside the folder. {FIX}")
    if not isinstance(entry, dict) or not {"size", "sha256"} <= entry.keys():
        raise DataError(f"{folder / MANIFEST} is damaged: the entry of {_cut(rel)} has no size and sha256. {FIX}")
    if not path.is_file():  # also refuses a device or a FIFO, which would be read forever
        raise DataError(f"{path} is missing (the checkpoint's manifest lists it). {FIX}")
    size = path.stat().st_size
    if size != entry["size"]:
        raise DataError(f"{path} is damaged: {size} bytes, the manifest says {_cut(entry['size'])}. {FIX}")
    if sha256_file(path) != entry["sha256"]:
        raise DataError(f"{path} is damaged: its sha256 differs from the manifest's. {FIX}")


def _cut(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}..."


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
