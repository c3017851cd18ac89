"""Why a write failed, in one line with the fix: a full disk, the file-size limit, a read-only folder.

``OSError`` carries an ``errno``; ``torch.save`` does not (it raises ``RuntimeError: [enforce fail at
inline_container.cc...] ... file write failed``), so for it the cause is found by looking at the disk's
free space and this process's file-size limit (``ulimit -f``) after the fact.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from rl4rec_core.errors import ConfigError, Rl4recError

_LOW_SPACE = 64 * 1024 * 1024  # below this, a failed write is put down to a full disk


def _causes(folder: Path, flag: str) -> dict[int, str]:
    other = f"or pass another {flag}" if flag else "or write somewhere else"
    return {
        errno.ENOSPC: f"the disk holding {folder} is full. Fix: free space on it, {other}",
        errno.EDQUOT: f"the disk quota for {folder} is used up. Fix: free space in your quota, {other}",
        errno.EFBIG: (f"a file in {folder} grew past this process's file-size limit (ulimit -f). Fix: raise the "
                      f"limit (`ulimit -f unlimited`) and run again"),
        errno.EROFS: f"{folder} is on a read-only file system. Fix: {other.removeprefix('or ')} on a writable disk",
        errno.EACCES: f"permission denied writing to {folder}. Fix: make it writable (chmod u+w), {other}",
        errno.EPERM: f"permission denied writing to {folder}. Fix: make it writable (chmod u+w), {other}",
        errno.ENOTDIR: f"a part of {folder} is a file, not a folder. Fix: {other.removeprefix('or ')}",
    }


def write_error(e: OSError, folder: str | Path, what: str, flag: str = "--checkpoint_dir") -> Rl4recError:
    """A one-line error for an ``OSError`` raised while writing ``what`` into ``folder``."""
    folder = Path(folder)
    cause = _causes(folder, flag).get(e.errno or -1)
    if cause is None:
        cause = f"{e.strerror or e}. Fix: check that {folder} is writable and has free space"
    return Rl4recError(f"could not {what}: {cause}")


def failed_save(e: BaseException, folder: str | Path, what: str, flag: str = "--checkpoint_dir") -> Rl4recError:
    """A one-line error for any failure of a save into ``folder`` (``OSError`` or ``torch.save``'s
    ``RuntimeError``); the cause is guessed from the disk and the limits when the error does not say."""
    if isinstance(e, OSError) and e.errno is not None:
        return write_error(e, folder, what, flag)
    return write_error(OSError(_likely_errno(Path(folder)), str(e).splitlines()[0][:160]), folder, what, flag)


def _likely_errno(folder: Path) -> int:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            return errno.EFBIG
    except (ImportError, ValueError, OSError):
        pass
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if shutil.disk_usage(probe).free < _LOW_SPACE:
            return errno.ENOSPC
    except OSError:
        pass
    if not os.access(probe, os.W_OK):
        return errno.EACCES
    return errno.EIO


_TORCH_WRITER = ("PytorchStreamWriter", "inline_container", "file write failed")


@contextlib.contextmanager
def saving_into(folder: str | Path, what: str, flag: str = "--checkpoint_dir") -> Iterator[None]:
    """Turn a failed write inside the block into :func:`failed_save`'s one-line error; other errors pass."""
    try:
        yield
    except OSError as e:
        raise failed_save(e, folder, what, flag) from None
    except RuntimeError as e:  # torch.save's writer reports a failed write without an errno
        if not any(marker in str(e) for marker in _TORCH_WRITER):
            raise
        raise failed_save(e, folder, what, flag) from None


def check_output_file(path: str | Path, flag: str = "--output") -> None:
    """Refuse, before any work, an output file path that cannot be written: a folder, a path through a
    file, or a folder this process may not write."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; pass a file path, e.g. {flag} {path / 'metrics.json'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder. Fix: pass a path in a folder")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{flag} {path}: {parent} is not writable. Fix: pass a path in a folder you can write")
