"""Start a policy from another one (``--init_from``): GRPO after supervised fine-tuning.

The starting policy's LoRA adapter is merged into the base weights, and training adds fresh
adapters on top. Switching those adapters off then gives the starting policy, so the KL penalty is
anchored to the SFT policy rather than to the raw base model, and "untrained" means "as it started".

A checkpoint of such a policy carries a copy of its starting adapter in ``policy/init/`` (a few MB),
so it loads anywhere: from an MLflow artifact or the registry, without the SFT run's folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rl4rec_core.errors import ConfigError, MissingArtifactError

INIT_DIR = "init"
POLICY_FILE = "policy.json"
_COPIED = ("adapter_model.safetensors", "adapter_config.json", "model.safetensors", "config.json", POLICY_FILE)


def resolve_policy_dir(path: str | Path) -> Path:
    """A policy folder (with ``policy.json``) from itself, a checkpoint folder, or a run folder."""
    from rl4rec_core.checkpoints import resolve_checkpoint

    p = Path(path).expanduser()
    if (p / POLICY_FILE).is_file():
        return p.resolve()
    if (p / "policy" / POLICY_FILE).is_file():
        return (p / "policy").resolve()
    if not p.exists():
        raise MissingArtifactError(
            f"--init_from {path}: no such folder. Fix: pass the SFT run's checkpoint, e.g. "
            "checkpoints/ml-100k_sft/checkpoint_final (written by `rl4rec sft`)"
        )
    ckpt = resolve_checkpoint(p)
    if not (ckpt / "policy" / POLICY_FILE).is_file():
        raise MissingArtifactError(f"--init_from {path}: {ckpt} holds no LLM policy (no policy/{POLICY_FILE})")
    return (ckpt / "policy").resolve()


def read_init_config(path: str | Path) -> dict:
    """The starting policy's saved ``policy`` settings as a dict (dummy policies are refused)."""
    meta = json.loads((resolve_policy_dir(path) / POLICY_FILE).read_text())
    if meta.get("kind") != "llm":
        raise ConfigError(f"--init_from {path} is a {meta.get('kind')!r} policy; only an LLM policy can start an LLM")
    saved = meta.get("config", {}).get("policy")
    if not isinstance(saved, dict):
        raise ConfigError(f"--init_from {path} was saved by another rl4rec (no policy settings in {POLICY_FILE}); "
                          "train the starting policy again with this version")
    return saved


def check_start(init_from: str | Path, model_name: str) -> Path:
    """The starting policy's folder, after checking it grew from ``model_name`` (before any model load)."""
    folder = resolve_policy_dir(init_from)
    cfg = read_init_config(folder)
    if cfg.get("policy_model") != model_name:
        raise ConfigError(
            f"--init_from {init_from} was trained from {cfg.get('policy_model')!r}, not {model_name!r}; "
            f"pass --policy_model {cfg.get('policy_model')} (or another starting checkpoint)"
        )
    return folder


def merge_start(model, init_from: str | Path, model_name: str):
    """``model`` (the plain base LM) with the starting policy's weights merged in; returns the model."""
    folder = check_start(init_from, model_name)
    cfg = read_init_config(folder)
    if cfg.get("init_from"):  # a chain (SFT -> GRPO -> GRPO): merge the earlier starts first
        model = merge_start(model, _own_init(folder, cfg["init_from"]), model_name)
    if cfg.get("lora", True):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    return model


def _own_init(folder: Path, recorded: str) -> Path:
    """The copy a saved policy carries in ``init/``, else the recorded path."""
    return folder / INIT_DIR if (folder / INIT_DIR).is_dir() else Path(recorded)


def copy_start(init_from: str | Path, directory: Path) -> None:
    """Copy the starting policy (and its own start, recursively) into ``directory/init``."""
    src = resolve_policy_dir(init_from)
    dst = Path(directory) / INIT_DIR
    if dst.resolve() == src:
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    if (src / INIT_DIR).is_dir():
        shutil.copytree(src / INIT_DIR, dst / INIT_DIR, dirs_exist_ok=True)
