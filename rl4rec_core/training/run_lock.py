"""One writer per run folder: ``run.lock`` names the process that writes the run.

Two ``rl4rec train`` processes on one ``--checkpoint_dir`` (two fresh runs, or a ``--resume`` started
while the run still writes) would interleave their log lines and mix their checkpoints. The writer
therefore takes the folder's lock before it reads or changes anything there, and gives it back when it
ends, on an error too.

- The lock file holds the holder's host, PID, the PID's start time and when the run started. It is
  written in full to a temporary file first and then hard-linked to ``run.lock``: ``link`` fails when the
  name exists, so exactly one process wins and no reader ever sees half a lock.
- A second writer is refused with one line naming the holder.
- A lock whose holder is dead (same host, its PID gone or reused by a later process) is stale: a run
  killed with ``kill -9`` leaves one. It is taken over with a warning. On another host liveness cannot
  be checked, so such a lock is refused with the command that removes it.
- Taking over happens under ``flock`` on the folder, so two processes that find the same stale lock
  cannot both take it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.write_errors import write_error

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
_MAX_LOCK_BYTES = 64 * 1024  # a lock is a few hundred bytes; anything bigger is not one of ours
_HELD: set[str] = set()  # tokens of the locks this process holds


def process_start(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or None when unknown: tells a PID reused by a
    later process from the one that took the lock."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - psutil missing, or no such process: liveness falls back to kill(0)
        return None


def holder_alive(holder: dict[str, Any]) -> bool:
    """Whether the process named by a lock on this host still runs (and is the same process)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if pid == os.getpid():  # this process holds no such lock (a leftover of an earlier process with our PID)
        return holder.get("token") in _HELD
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    started, recorded = process_start(pid), holder.get("pid_started")
    return not (isinstance(recorded, (int, float)) and started is not None and abs(started - recorded) > 1.0)


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host-a (started 2026-12-07 18:01:02, `rl4rec train ...`)``."""
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    command = str(holder.get("command", ""))[:120]
    return f"pid {holder.get('pid')} on {holder.get('host')} (started {when}{', `' + command + '`' if command else ''})"


def _read_holder(lock: Path) -> dict[str, Any] | None:
    """The lock's content, or None when it is unreadable or not a lock (never a traceback)."""
    try:
        with lock.open("rb") as f:
            raw = f.read(_MAX_LOCK_BYTES + 1)
        value = json.loads(raw.decode("utf-8")) if len(raw) <= _MAX_LOCK_BYTES else None
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@contextlib.contextmanager
def _guard(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder for the check-and-take of a lock (processes of this host)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the link below still lets only one writer in
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _prepare_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--checkpoint_dir {folder} is a file, not a folder. Fix: pass a folder path "
                          f"(a new one is created), or move the file away")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"--checkpoint_dir {folder}: a part of the path is a file, not a folder. Fix: pass "
                          f"another --checkpoint_dir") from None
    except OSError as e:
        raise write_error(e, folder, "create the run folder") from None


def _write_temp(folder: Path, record: dict[str, Any]) -> Path:
    tmp = folder / f".{LOCK_NAME}.{os.getpid()}.{record['token'][:8]}.tmp"
    try:
        with tmp.open("x") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(e, folder, "write the run lock") from None
    return tmp


class RunLock:
    """The lock of one run folder; ``with RunLock(folder):`` holds it for the block."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.token = uuid.uuid4().hex
        self.held = False

    def record(self) -> dict[str, Any]:
        pid = os.getpid()
        return {"host": socket.gethostname(), "pid": pid, "pid_started": process_start(pid),
                "started": time.time(), "command": " ".join(["rl4rec", *sys.argv[1:]])[:400], "token": self.token}

    def acquire(self) -> RunLock:
        _prepare_folder(self.folder)
        tmp = _write_temp(self.folder, self.record())
        try:
            with _guard(self.folder):
                self._take(tmp)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.held = True
        _HELD.add(self.token)
        return self

    def _take(self, tmp: Path) -> None:
        for _ in range(3):  # a lock removed between our link and our read: try again
            try:
                os.link(tmp, self.path)
                return
            except FileExistsError:
                pass
            except OSError as e:
                if e.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):  # no hard links here: O_EXCL then
                    return self._take_exclusive(tmp)
                raise write_error(e, self.folder, "write the run lock") from None
            holder = _read_holder(self.path)
            if holder == {}:
                continue
            self._check_stale(holder)
            self.path.unlink(missing_ok=True)
        raise Rl4recError(f"could not take {self.path}: it keeps changing. Fix: make sure no other process "
                          f"writes to {self.folder}, then run again")

    def _take_exclusive(self, tmp: Path) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(tmp.read_bytes())

    def _check_stale(self, holder: dict[str, Any] | None) -> None:
        """Return when ``holder``'s lock may be taken over (with a warning); else refuse naming it."""
        fix = "wait for it to end, stop it, or pass another --checkpoint_dir"
        if holder is None:
            raise ConfigError(f"{self.path} exists but is not a lock rl4rec wrote. Fix: if no run writes to "
                              f"{self.folder}, delete it (rm {self.path}) and run again")
        if holder.get("host") != socket.gethostname():
            raise ConfigError(
                f"{self.folder} is being written by another run: {describe(holder)}, on another machine, so "
                f"rl4rec cannot tell whether it still runs. Fix: {fix}; if it is gone, delete {self.path}")
        if holder_alive(holder):
            raise ConfigError(f"{self.folder} is being written by another run: {describe(holder)}. Fix: {fix}")
        log.warning("taking over the stale lock of %s: its writer, %s, is no longer running", self.folder,
                    describe(holder))

    def release(self) -> None:
        """Remove the lock when it is still ours (never another writer's)."""
        if not self.held:
            return
        self.held = False
        _HELD.discard(self.token)
        with contextlib.suppress(OSError), _guard(self.folder):
            if (_read_holder(self.path) or {}).get("token") == self.token:
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
