"""Training checkpoints and the JSONL log: what ``--resume`` needs to continue as if never stopped.

A checkpoint folder (``checkpoint_step_N/`` or ``checkpoint_final/``), written atomically::

    policy/             the policy's own save(): weights or LoRA adapter, optimizer, baseline, its RNG
    trainer_state.json  {"step": N, "sampler": <numpy Generator state>, "rng": {python, numpy, torch}}
                        (and "config_changes": the settings changes --override_config accepted)
    config.json         the run's ``Settings`` tree (``settings.policy.policy`` says which policy: dummy or LLM)
    manifest.json       size and sha256 of every other file, written last (``rl4rec_core.integrity``)

Loading verifies the manifest (an older checkpoint without one: its JSON files parse), and binary
files load without unpickling code, so a damaged or hostile checkpoint is a one-line ``DataError``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl4rec_core.errors import DataError, MissingArtifactError
from rl4rec_core.integrity import read_json_object, verify_manifest, write_manifest
from rl4rec_core.io import atomic_dir, atomic_path, write_json
from rl4rec_core.write_errors import saving_into

LOG_NAME = "training_log.jsonl"
FINAL_NAME = "checkpoint_final"
_STEP_RE = re.compile(r"^checkpoint_step_(\d+)$")
_VISIBLE_RE = re.compile(rf"^(checkpoint_step_\d+|{FINAL_NAME})$")
# atomic_dir's temporary (.NAME.XXXX.tmp) and replaced (.NAME.old) folders
_HIDDEN_RE = re.compile(rf"^\.?(checkpoint_step_\d+|{FINAL_NAME})(\..+\.tmp|\.old)?$")


def capture_rng() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch) as JSON-able values."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def save_checkpoint(path: Path, policy, trainer_state: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write a complete checkpoint folder atomically (an old one at ``path`` survives a failure)."""
    with atomic_dir(path) as tmp:
        policy.save(tmp / "policy")
        write_json(tmp / "trainer_state.json", trainer_state)
        write_json(tmp / "config.json", config)
        write_manifest(tmp)  # last: a folder with a manifest is complete
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(trainer_state, config)`` of a checkpoint folder, after :func:`verify_checkpoint`."""
    path = Path(path)
    verify_checkpoint(path)
    return read_json_object(path / "trainer_state.json"), read_json_object(path / "config.json")


def verify_checkpoint(path: Path) -> None:
    """Raise a one-line error unless ``path`` is an intact checkpoint: its manifest's sizes and hashes
    match, or (an older checkpoint without a manifest) its JSON files parse. Binary files are checked
    when they are loaded."""
    path = Path(path)
    if not (path / "trainer_state.json").is_file():
        raise MissingArtifactError(
            f"{path} is not a training checkpoint (no trainer_state.json); pass a checkpoint_step_N or "
            f"checkpoint_final folder, or the run folder that holds them"
        )
    if verify_manifest(path):
        return
    for name in ("trainer_state.json", "config.json", "policy/policy.json"):
        if (path / name).exists() or name == "config.json":
            read_json_object(path / name)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``run_dir`` as ``(step, path)``, oldest first (final last on ties).

    A ``checkpoint_final`` whose ``trainer_state.json`` cannot be read is listed as the newest (with
    the largest step of the others), so ``--resume`` tries it first and says why it skips it.
    """
    run_dir = Path(run_dir)
    found: list[tuple[int, int, Path]] = []
    if not run_dir.is_dir():
        return []
    finals = []
    for p in run_dir.iterdir():
        if not (p / "trainer_state.json").is_file():
            continue  # a temporary or half-deleted folder
        m = _STEP_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), 0, p))
        elif p.name == FINAL_NAME:
            finals.append(p)
    for p in finals:
        found.append((_final_step(p, default=max((s for s, _, _ in found), default=0)), 1, p))
    return [(s, p) for s, _, p in sorted(found)]


def _final_step(path: Path, default: int) -> int:
    try:
        step = read_json_object(path / "trainer_state.json").get("step")
    except DataError:
        return default
    # a step that cannot be (negative, not an integer) lists it as the newest, to be tried and skipped first
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else default


def run_artifacts(run_dir: Path, hidden: bool = True) -> list[Path]:
    """What a training run leaves in ``run_dir``: checkpoint folders, whole or not, the log and
    (``hidden``) the temporary and replaced copies a killed write leaves. ``--overwrite`` deletes them."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    ours = _HIDDEN_RE if hidden else _VISIBLE_RE
    return sorted(p for p in run_dir.iterdir() if ours.match(p.name) or p.name == LOG_NAME)


def clear_run(run_dir: Path) -> None:
    """Delete :func:`run_artifacts`, whatever state they are in."""
    for p in run_artifacts(run_dir):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from either itself or its run folder (final, else the latest step)."""
    path = Path(path)
    if (path / "trainer_state.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise MissingArtifactError(
            f"no checkpoint found at {path}; train one first with `rl4rec train --checkpoint_dir {path}` "
            f"or pass a folder that holds checkpoint_step_N/ or checkpoint_final/"
        )
    return latest


def policy_kind(checkpoint: str | Path) -> str:
    """``dummy`` or ``llm``: the saved policy's own ``policy/policy.json`` says; else the run's
    ``config.json`` (``policy.policy`` of its settings tree)."""
    ckpt = Path(checkpoint)
    meta = ckpt / "policy" / "policy.json"
    kind = read_json_object(meta).get("kind") if meta.is_file() else None
    if kind is not None:
        return kind
    config = ckpt / "config.json"
    if config.is_file():
        policy = read_json_object(config).get("policy")  # the settings tree (RL: Settings, SFT: SFTConfig)
        return "dummy" if isinstance(policy, dict) and policy.get("policy") == "dummy" else "llm"
    if meta.is_file():
        return "llm"
    raise MissingArtifactError(
        f"{ckpt} is not a training checkpoint (no policy/ or config.json); pass a checkpoint_final or "
        f"checkpoint_step_N folder written by `rl4rec train`"
    )


class TrainingLog:
    """Append-only ``training_log.jsonl``: one JSON object per step, flushed line by line."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        with saving_into(self.path.parent, f"append to {self.path.name}"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every record, oldest first. A torn last line is skipped: a writer killed mid-line leaves one
        behind. A bad line before the last cannot come from a kill, so it is an error, not silently lost."""
        return [record for _, record in self._records()]

    def _records(self) -> list[tuple[str, dict[str, Any]]]:
        """``(line, record)`` of every line that holds a record; see :meth:`read` for bad lines."""
        if not self.path.is_file():
            return []
        lines = [(n, line) for n, line in enumerate(self.path.read_text(errors="replace").splitlines(), 1)
                 if line.strip()]
        records = []
        for i, (n, line) in enumerate(lines):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except (ValueError, RecursionError) as e:
                if i == len(lines) - 1:
                    break
                why = e.msg if isinstance(e, json.JSONDecodeError) else str(e)[:80]
                raise DataError(
                    f"{self.path} line {n} is not a JSON record ({why}); only a torn last line is expected "
                    f"after a kill, so the log was edited or damaged: fix or delete that line"
                ) from None
            records.append((line, record))
        return records

    def truncate(self, step: int) -> int:
        """Keep only records of steps ``< step`` (those a resumed run will not redo); returns how many.
        A bad line before the last is the error :meth:`read` gives, and the log is left as it is."""
        if not self.path.is_file():
            return 0
        kept = [line for line, rec in self._records() if _step_of(rec, step) < step]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))
        return len(kept)


def _step_of(record: dict[str, Any], default: int) -> int | float:
    step = record.get("step", default)
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else default
