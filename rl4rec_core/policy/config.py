"""``PolicyConfig``: what builds a policy, every value taken from the settings groups (no defaults of its own).

Saved as the ``config`` of ``policy.json`` in every checkpoint (``rl4rec_core.policy.checkpoint``), so a
loaded policy samples with the very settings it was trained with: its ``policy`` group (model, LoRA,
sampling, and the prompt fields resolved for its dataset), its ``algorithm`` group, the run's ``seed`` and
the ``device`` it was built on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import MAX_SEED, AlgorithmSettings, PolicySettings, Settings, groups_of


@dataclass(frozen=True)
class PolicyConfig:
    """A policy's settings: ``policy`` and ``algorithm`` groups, the run's ``device`` and ``seed``."""

    policy: PolicySettings
    algorithm: AlgorithmSettings
    device: str
    seed: int

    def __post_init__(self) -> None:
        for name, cls in (("policy", PolicySettings), ("algorithm", AlgorithmSettings)):
            value = getattr(self, name)
            if isinstance(value, dict):  # from policy.json
                try:
                    object.__setattr__(self, name, cls(**value))
                except TypeError as e:
                    raise ConfigError(f"saved policy settings do not match this rl4rec ({e}); train it again") from None
            elif not isinstance(value, cls):
                raise ConfigError(f"the {name} settings must be a {cls.__name__}, got {type(value).__name__}")
        seed_ok = isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED
        if not isinstance(self.device, str) or not seed_ok:
            raise ConfigError(f"a policy's device is a name and its seed an integer in [0, 2**32-1], got "
                              f"{self.device!r}, {self.seed!r}")

    @classmethod
    def of(cls, settings: Settings, device: str | None = None) -> PolicyConfig:
        """The config of a run's policy: its groups, seed and device (default: the run's)."""
        return cls(settings.policy, settings.algorithm, device or settings.run.device, settings.run.seed)

    @classmethod
    def from_fields(cls, device: str = "cpu", seed: int = 0, **fields: Any) -> PolicyConfig:
        """From flat settings names of the policy and algorithm groups (tests, notebooks):
        ``PolicyConfig.from_fields(policy_model="gpt2", max_new_tokens=8, group_size=2)``."""
        groups = groups_of(fields, ("policy", "algorithm"))
        return cls(groups["policy"], groups["algorithm"], device, seed)

    @property
    def learning_rate(self) -> float:
        """The optimiser step: ``algorithm.learning_rate``, else the default of this policy's kind."""
        return self.algorithm.rate_for(self.policy.policy)

    def replace(self, **policy_fields: Any) -> PolicyConfig:
        """A copy with some fields of the ``policy`` group changed."""
        return dataclasses.replace(self, policy=dataclasses.replace(self.policy, **policy_fields))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        missing = {"policy", "algorithm", "device", "seed"} - set(d)
        if missing:
            raise ConfigError(f"saved policy config lacks {sorted(missing)}: written by another rl4rec; train it again")
        return cls(d["policy"], d["algorithm"], d["device"], d["seed"])
