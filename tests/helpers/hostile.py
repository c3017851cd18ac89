"""Damaged and hostile checkpoint files, made the way a fault or an attacker would make them."""

from __future__ import annotations

import os
from pathlib import Path


class RunsCode:
    """Unpickling this calls ``os.system``: here it only creates ``marker``, to show whether it ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def plant_pickle(path: Path, marker: Path, refresh_manifest: bool = True) -> Path:
    """Replace ``path`` with a torch file that runs code when unpickled (``weights_only=False``).

    ``refresh_manifest``: also rewrite the checkpoint's manifest, as a crafted checkpoint would have
    one that agrees (a manifest detects damage, it is no signature).
    """
    import torch

    path = Path(path)
    torch.save({"optimizer": RunsCode(marker), "baseline": {}, "num_updates": 0}, path)
    if refresh_manifest:
        refresh(checkpoint_of(path))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its bytes, as a full disk or a killed copy leaves it."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def checkpoint_of(path: Path) -> Path:
    """The checkpoint folder (the one holding trainer_state.json) above ``path``."""
    for parent in Path(path).parents:
        if (parent / "trainer_state.json").is_file():
            return parent
    raise AssertionError(f"{path} is not inside a checkpoint")


def refresh(checkpoint: Path) -> None:
    from rl4rec_core.integrity import MANIFEST, write_manifest

    if (Path(checkpoint) / MANIFEST).exists():
        write_manifest(checkpoint)
