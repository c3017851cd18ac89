"""Child processes under a fault: a file-size limit (``ulimit -f``), or without root's power to write into
a folder whose permissions say no (so a read-only folder is read-only for the tests whoever runs them)."""

from __future__ import annotations

import ctypes
import os
import resource

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3


def file_size_limit(max_bytes: int):
    """``preexec_fn``: no file of the child may grow past ``max_bytes`` (Python ignores SIGXFSZ, so a write
    past it fails with EFBIG instead of killing the process)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return limit


def permissions_apply() -> None:
    """``preexec_fn``: as root, drop the capabilities that override file permissions (from the bounding set,
    so the exec'd child never has them); as anyone else, nothing to do."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
