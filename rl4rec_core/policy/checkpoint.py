"""A ``RecPolicy``'s files in a checkpoint folder: writing, restoring, and rebuilding a policy from them.

The folder holds the weights (``adapter_model.safetensors`` with LoRA, else ``model.safetensors``),
the tokenizer, ``policy.json`` (kind, ``PolicyConfig``, update count), ``training_state.pt``
(optimizer, REINFORCE baseline, update count: tensors and plain values, loaded with
``weights_only=True`` so a hostile file cannot run code) and, for a warm-started policy, its start in ``init/``.
The trainer's own checkpoint layout around this folder is ``rl4rec_core.checkpoints``'s.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rl4rec_core.errors import DataError, MissingArtifactError
from rl4rec_core.integrity import FIX, load_torch, read_json_object
from rl4rec_core.io import atomic_path, write_json
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.state_checks import check_baseline_state, check_count, check_optimizer_state, owned, state_bound

POLICY_FILE = "policy.json"
_FLOAT_DTYPES = frozenset({"F32", "BF16", "F16", "F64"})
STATE_FILE = "training_state.pt"


class PolicyCheckpoints:
    """Checkpoint half of ``RecPolicy``: ``save``, ``load``, ``from_pretrained`` and the training state.

    Uses the policy's ``config``, ``model``, ``tokenizer``, ``device``, ``optimizer``, ``baseline``,
    ``num_updates`` and ``last_rollout``.
    """

    def state_dict(self) -> dict:
        """Training state beyond the weights: optimizer, REINFORCE baseline, update count."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.state_dict(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.num_updates = int(state["num_updates"])

    def save(self, directory: str | Path, training_state: bool = True) -> Path:
        """Write weights (adapter or full), tokenizer, ``policy.json`` and (optionally) the training state.

        Files are written in place; write into a fresh folder (``rl4rec_core.io.atomic_dir``) to make a
        checkpoint atomic.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        write_json(
            directory / POLICY_FILE, {"kind": "llm", "config": self.config.to_dict(), "num_updates": self.num_updates}
        )
        if self.config.policy.init_from:  # the checkpoint stays loadable without the starting run's folder
            from rl4rec_core.policy.warm_start import copy_start

            copy_start(self.config.policy.init_from, directory)
        if training_state:
            with atomic_path(directory / STATE_FILE) as tmp:
                torch.save(self.state_dict(), tmp)
        return directory

    def load(self, directory: str | Path) -> None:
        """Restore weights (and the training state when the folder has one) saved by :meth:`save`; every file
        is checked against this model before anything changes (a ``DataError`` otherwise)."""
        directory = Path(directory)
        state = None
        if (directory / STATE_FILE).is_file():
            state = self._read_training_state(directory / STATE_FILE)
        self._load_weights(directory)
        if state is not None:
            self.load_state_dict(state)
        self.last_rollout = None
        self.weights_changed()

    def _read_training_state(self, file: Path) -> dict:
        """``training_state.pt``, bounded by the trainable weights and checked against the optimizer."""
        params = self.trainable_parameters()
        state = load_torch(file, map_location=self.device, max_bytes=state_bound(params, copies=3))
        if not isinstance(state, dict) or not {"optimizer", "baseline", "num_updates"} <= state.keys():
            raise DataError(f"{file} is not a policy's training state. {FIX}")
        check_optimizer_state(file, state["optimizer"], self.optimizer)
        check_baseline_state(file, state["baseline"])
        check_count(file, "num_updates", state["num_updates"])
        return {**state, "optimizer": owned(state["optimizer"])}

    def _expected_weights(self) -> dict[str, torch.Tensor]:
        if self.config.policy.lora:
            from peft import get_peft_model_state_dict

            return get_peft_model_state_dict(self.model)
        return self.model.state_dict()

    def _check_weights_file(self, weights: Path, expected: dict[str, torch.Tensor]) -> None:
        """The file's size and header (names, shapes, dtypes: read without loading a tensor) fit this model."""
        from safetensors import SafetensorError, safe_open

        limit = state_bound(expected.values(), copies=2)  # a float32 copy of bf16 weights is twice as big
        if weights.stat().st_size > limit:
            raise DataError(f"{weights} is {weights.stat().st_size:,} bytes, more than this model's weights "
                            f"take ({limit:,}). {FIX}")
        try:
            with safe_open(str(weights), framework="pt") as f:
                header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise DataError(f"{weights} is damaged ({str(e).splitlines()[0][:200]}). {FIX}") from None
        # tied models save no lm_head: it is the embedding matrix
        tied = {"lm_head.weight"} if getattr(self.model.config, "tie_word_embeddings", False) else set()
        missing = sorted(set(expected) - set(header) - tied)
        unexpected = sorted(set(header) - set(expected))
        if missing or unexpected:
            raise DataError(f"{weights} does not match this model (missing {missing[:3]}, unexpected "
                            f"{unexpected[:3]}). {FIX}")
        for name, (shape, dtype) in header.items():
            if shape != tuple(expected[name].shape) or dtype not in _FLOAT_DTYPES:
                raise DataError(f"{weights} does not match this model: {name} is {dtype} {shape}, the model "
                                f"needs {tuple(expected[name].shape)}. {FIX}")

    def _load_weights(self, directory: Path) -> None:
        """The adapter (LoRA) or the full weights from ``directory``, refusing ones for another model."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        lora = self.config.policy.lora
        weights = directory / ("adapter_model.safetensors" if lora else "model.safetensors")
        if not weights.is_file():
            kind = "a LoRA adapter" if lora else "full model weights"
            raise MissingArtifactError(
                f"{directory} has no {weights.name} ({kind} expected). Fix: point at a folder written by "
                "RecPolicy.save (a checkpoint_step_N or checkpoint_final folder) made with the same --lora setting"
            )
        self._check_weights_file(weights, self._expected_weights())
        try:
            state = load_file(str(weights), device=str(self.device))
        except (SafetensorError, OSError) as e:
            raise DataError(f"{weights} is damaged ({str(e).splitlines()[0][:200]}). {FIX}") from None
        if lora:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, state)
        else:
            self.model.load_state_dict(state, strict=False)

    @classmethod
    def from_pretrained(cls, directory: str | Path, trained: bool = True, device: str | None = None):
        """A ``RecPolicy`` rebuilt from ``policy.json`` in ``directory``, on ``device`` (default: the saved one).

        ``trained=False`` gives the same configuration *before* training (the base model, fresh
        adapters), the comparison point for evaluation.
        """
        directory = Path(directory)
        meta = directory / POLICY_FILE
        if not meta.is_file():
            raise MissingArtifactError(
                f"{directory} is not a RecPolicy checkpoint (no {POLICY_FILE}). Fix: pass a checkpoint_step_N "
                "or checkpoint_final folder written by `rl4rec train`"
            )
        cfg = read_json_object(meta).get("config")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("policy"), dict):
            raise DataError(f"{meta} has no 'config' object with the policy settings. {FIX}")
        if cfg["policy"].get("init_from") and (directory / "init").is_dir():
            cfg["policy"]["init_from"] = str(directory / "init")
        config = PolicyConfig.from_dict({**cfg, **({"device": device} if device else {})})
        policy = cls(config)
        if trained:
            policy.load(directory)
        return policy
