"""``--resume``: which checkpoint a run continues from, and whether the given settings may continue it.

- The newest checkpoint that verifies and loads is the one; each newer one skipped is logged with why.
- Its ``config.json`` is the truth: given settings that differ in a key that defines the run are
  refused with every differing key listed, unless ``--override_config``, which records the changes in
  ``trainer_state.json`` (``config_changes``) and says so in the log.
- Nothing to resume is an error, never a fresh run, and the training log is left as it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.integrity import FIX
from rl4rec_core.settings import Settings, flatten
from rl4rec_core import checkpoints as ckpt

log = logging.getLogger(__name__)
SCORING = "scoring"  # config.json's key of the scorer records, beside the settings groups

# Settings a resumed run may change without --override_config. None changes what the run learns:
# - how long it goes on and how often it reports and saves (extending a finished run is the normal use);
# - the switches of this very command (resume, overwrite, override_config) and where the run folder is
#   (it may have been moved or copied);
# - where the work runs: the device, and how the retrieval service is reached (actor name, namespace)
#   which library runs its encoder (emb_backend), how it is chunked and placed: the same embedding model,
#   embeddings and scorer;
#   and how many data-parallel workers share a step (the same batch and samples, see data_parallel.py).
# Everything else (data, seed, policy, prompt, algorithm, reward, batch) defines the run.
MAY_DIFFER = frozenset({
    "trainer.num_steps", "trainer.save_every", "trainer.log_every", "trainer.resume", "trainer.overwrite",
    "trainer.override_config", "trainer.checkpoint_dir", "run.device", "retrieval.actor_name",
    "retrieval.namespace", "retrieval.emb_backend", "retrieval.chunk_size", "retrieval.actor_cpus",
    "retrieval.max_restarts", "trainer.num_workers", "trainer.cpus_per_worker",
})


def saved_settings(path: Path, config: dict[str, Any]) -> Settings:
    """The ``Settings`` of a checkpoint's ``config.json`` (its scorer records aside). Building them imports
    nothing the checkpoint names: a ``pkg.module:fn`` reward is checked by its form only."""
    try:
        return Settings.from_dict({k: v for k, v in config.items() if k != SCORING})
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as e:
        raise DataError(
            f"{Path(path) / 'config.json'} holds no valid settings ({str(e).splitlines()[0][:200]}). {FIX}"
        ) from None


def scoring_of(source: Any, datasets: list[str]) -> dict[str, dict[str, Any]]:
    """``{dataset: scorer record}`` (``retrieval.hybrid.scorer_record``) of the reward source, as the service
    reports it; ``{}`` for a source that does not say (a test double)."""
    info = getattr(source, "info", None)
    scoring = info().get("scoring", {}) if callable(info) else {}
    return {name: scoring[name] for name in datasets if name in scoring}


def run_config(settings: Settings, scoring: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A checkpoint's ``config.json``: the settings tree and, under ``scoring``, what scored the rewards."""
    return {**settings.to_dict(), **({SCORING: scoring} if scoring else {})}


def scoring_changes(config: dict[str, Any], scoring: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Differences between the saved and the current scorer records (none when either is unknown: a
    checkpoint written before they were saved, or a source that does not report them)."""
    saved = config.get(SCORING)
    if not isinstance(saved, dict) or not scoring:
        return {}
    old, new = flatten({SCORING: saved}), flatten({SCORING: scoring})
    return {k: {"saved": old.get(k), "given": new.get(k)} for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)}


def config_changes(saved: Settings, given: Settings) -> dict[str, dict[str, Any]]:
    """``{dotted key: {"saved": .., "given": ..}}`` for each setting outside :data:`MAY_DIFFER` that differs."""
    old = flatten(json.loads(json.dumps(saved.to_dict())))
    new = flatten(json.loads(json.dumps(given.to_dict())))
    return {key: {"saved": old.get(key), "given": value} for key, value in sorted(new.items())
            if key not in MAY_DIFFER and old.get(key) != value}


def check_settings(path: Path, saved: Settings, given: Settings,
                   more: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The accepted changes (``{}`` when none); a ``ConfigError`` listing them without ``override_config``.
    ``more``: other differences found (the scorer records)."""
    changes = {**config_changes(saved, given), **(more or {})}
    if not changes:
        return {}
    listed = ", ".join(f"{k} (saved {v['saved']!r}, given {v['given']!r})" for k, v in changes.items())
    if not given.trainer.override_config:
        raise ConfigError(
            f"--resume: the settings differ from those {path} was trained with: {listed}. Fix: resume with "
            f"the saved values (they are in {Path(path) / 'config.json'}), or pass --override_config to continue "
            f"with the new ones (the changes are recorded)"
        )
    log.warning("--override_config: %s continues with changed settings: %s (recorded in trainer_state.json)",
                path, listed)
    return changes


def nothing_to_resume(out: Path, dataset: str) -> ConfigError:
    where = "does not exist" if not out.exists() else "holds no checkpoint_step_N or checkpoint_final folder"
    start = ("drop --resume and pass --overwrite to start over (its training_log.jsonl is kept until then)"
             if (out / ckpt.LOG_NAME).exists() else "drop --resume to start a new run there")
    return ConfigError(
        f"--resume: nothing to resume, {out} {where}. Fix: pass the --checkpoint_dir of the run to continue "
        f"(the default is checkpoints/{dataset}_rl), or {start}"
    )


def resume_latest(trainer) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Restore ``trainer`` from the newest checkpoint of its folder that verifies and loads.

    Returns the checkpoint and the settings changes accepted by ``--override_config``. Newer checkpoints
    that are damaged are skipped, each with a warning naming it and why; a settings conflict is not
    skipped (an older checkpoint of the same run has the same settings), it is an error.
    """
    out = Path(trainer.output_dir)
    candidates = [p for _, p in reversed(ckpt.list_checkpoints(out))]
    if not candidates:
        raise nothing_to_resume(out, trainer.settings.run.dataset_name)
    skipped: list[str] = []
    for path in candidates:
        try:
            state, config = ckpt.read_checkpoint(path)
            saved = saved_settings(path, config)
            changes = check_settings(path, saved, trainer.settings, scoring_changes(config, trainer.scoring))
            trainer.restore_state(path, state, saved.trainer.num_steps)
        except (DataError, MissingArtifactError) as e:  # damaged: an older checkpoint may be whole
            log.warning("--resume: skipping %s: %s", path, e)
            skipped.append(f"{path.name}: {str(e).split(' Fix: ')[0]}")
            continue
        return path, changes
    raise DataError(
        f"--resume: none of the {len(candidates)} checkpoints in {out} is intact ({'; '.join(skipped)}). "
        f"Fix: copy an intact checkpoint back into {out}, or pass --overwrite instead of --resume to start over"
    )
