"""``TrainConfig``: every setting of one RL training run, validated before any model is loaded."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl4rec_core import paths
from rl4rec_core.errors import ConfigError

ALGORITHMS = ("grpo", "reinforce")


@dataclass
class TrainConfig:
    """One training run.

    ``batch_size`` counts *samples* (generated texts) per step, as in the original where every text
    gets a reward: a step draws ``batch_size // group_size`` users and generates ``group_size`` texts
    for each, so GRPO can compare the samples of one prompt with each other.
    """

    dataset_name: str = "ml-100k"
    num_steps: int = 1000
    batch_size: int = 16
    group_size: int = 4
    algorithm: str = "grpo"
    # the policy owns its optimizer; this is recorded here so a checkpoint says how it was trained
    learning_rate: float | None = None
    kl_coef: float = 0.0
    reward: str = "ndcg@10"
    num_negatives: int = 0
    save_every: int = 100
    log_every: int = 10
    checkpoint_dir: str | None = None  # default: paths.checkpoint_dir(dataset_name)
    resume: bool = False
    # a fresh run refuses a folder that already holds one, so nothing written is lost by accident
    overwrite: bool = False
    seed: int = 0
    # what the policy is, so evaluation can rebuild it from a checkpoint
    use_dummy: bool = False
    policy_model: str = "smollm2-135m-instruct"
    # a starting policy (the SFT checkpoint): merged into the base, the KL reference (see warm_start.py)
    init_from: str | None = None
    lora: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.dataset_name:
            raise ConfigError("dataset_name is empty; pass --dataset_name, e.g. ml-100k")
        _positive("num_steps", self.num_steps, "e.g. --num_steps 100")
        _positive("batch_size", self.batch_size, "e.g. --batch_size 16")
        _positive("group_size", self.group_size, "e.g. --group_size 4")
        _positive("save_every", self.save_every, "e.g. --save_every 100")
        _positive("log_every", self.log_every, "e.g. --log_every 10")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)} (--algorithm)"
            )
        if self.batch_size % self.group_size:
            raise ConfigError(
                f"batch_size {self.batch_size} is not divisible by group_size {self.group_size}: a step "
                f"generates group_size samples per user; use e.g. --batch_size "
                f"{max(self.group_size, self.batch_size // self.group_size * self.group_size)}"
            )
        if self.algorithm == "grpo" and self.group_size < 2:
            raise ConfigError(
                "GRPO needs group_size >= 2 (advantages are normalised within each user's group, so one "
                "sample always gets advantage 0); use --group_size 4 or --algorithm reinforce"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.kl_coef < 0:
            raise ConfigError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.num_negatives < 0:
            raise ConfigError(f"num_negatives must be >= 0 (0 = rank against all items), got {self.num_negatives}")
        if self.init_from and self.use_dummy:
            raise ConfigError("--init_from starts an LLM policy from a checkpoint; drop it or drop --use_dummy")
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite contradict each other; pass only one of --resume / --overwrite")
        from rl4rec_core.retrieval.rewards import resolve_reward

        resolve_reward(self.reward)  # raises ConfigError listing the known names

    @property
    def users_per_step(self) -> int:
        return self.batch_size // self.group_size

    @property
    def output_dir(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else paths.checkpoint_dir(self.dataset_name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in d.items() if k in names}, **overrides})


def _positive(name: str, value: int, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}; {hint}")
