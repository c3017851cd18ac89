"""Flow parameters checked in one place, before any task runs: a bad value costs milliseconds.

``PipelineParams`` is the single translation from flow parameters / CLI flags to the core's
``TrainConfig``; its ``__post_init__`` rejects what cannot work with a message naming the fix.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl4rec_core import paths
from rl4rec_core.evaluation.baselines import BASELINES
from rl4rec_core.errors import ConfigError

DEFAULT_BASELINES = ("popularity", "echo", "echo+prior")
# the recipe that works on MovieLens-100k within an hour on 2 CPU cores (docs/recipe.md): the
# defaults of the pipeline flow and of `rl4rec run`
RECIPE: dict[str, Any] = dict(
    sft_steps=250, sft_batch_size=8, sft_learning_rate=5e-4,
    num_steps=40, batch_size=16, reward="log_rank", learning_rate=2e-4, kl_coef=0.05,
    history_len=5, max_new_tokens=24, temperature=1.0,
)
PROMOTE_MODES = ("first", "always", "never")


@dataclass
class PipelineParams:
    dataset: str = "ml-100k"
    source: str | None = None  # raw files for a dataset other than the built-in ml-100k
    fmt: str = "auto"
    emb_model: str = "all-MiniLM-L6-v2"
    emb_type: str = "item"
    use_dummy: bool = False
    policy_model: str = "smollm2-135m-instruct"
    num_steps: int = 100
    batch_size: int = 16
    group_size: int = 4
    algorithm: str = "grpo"
    reward: str = "ndcg@10"
    learning_rate: float | None = None
    kl_coef: float = 0.0
    num_negatives: int = 0
    save_every: int = 50
    seed: int = 0
    checkpoint_dir: str | None = None  # default: checkpoints/{dataset}_rl/{run label}
    eval_split: str = "test"
    eval_users: int | None = 200  # None = every user of the split
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    evaluate_untrained: bool = True
    model_name: str = "rl4rec-{dataset}"
    experiment: str = "rl4rec"
    promote: str = "first"  # pipeline: make the first registered version champion
    num_gpus: float = 0.0
    actor_name: str = "RetrievalService"
    # the quality recipe: tuned hybrid retrieval -> SFT warm start -> GRPO (see docs/recipe.md)
    tune_retrieval: bool = True
    sft_steps: int = 0  # 0 = no SFT; LLM policies only
    sft_batch_size: int = 8
    sft_learning_rate: float = 5e-4
    init_from: str | None = None  # start GRPO from this checkpoint instead of running SFT
    train_cpus: float | None = None  # CPUs (= torch threads) of the SFT and RL tasks; None = a whole node
    history_len: int | None = None  # LLM prompt: last N items (None = the template's)
    max_new_tokens: int | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        from rl4rec_core.data.prepare import BUILTIN, read_meta

        if not self.dataset:
            raise ConfigError("dataset is empty; pass e.g. --dataset ml-100k")
        if self.source is not None:
            if not Path(self.source).expanduser().exists():
                raise ConfigError(f"source {self.source!r} does not exist; pass the folder with the raw dataset files")
        elif self.dataset not in BUILTIN and read_meta(self.dataset) is None:
            raise ConfigError(
                f"unknown dataset {self.dataset!r}: it is not built in ({', '.join(BUILTIN)}) and not prepared in "
                f"{paths.dataset_dir(self.dataset)}; pass --source with its raw files or prepare it first with "
                f"`rl4rec data prepare --dataset {self.dataset} --source DIR`"
            )
        if self.eval_users is not None and (not isinstance(self.eval_users, int) or self.eval_users < 1):
            raise ConfigError(f"eval_users must be a positive integer or None (all users), got {self.eval_users!r}")
        if self.eval_split not in ("valid", "test"):
            raise ConfigError(f"eval_split must be 'valid' or 'test', got {self.eval_split!r}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")
        if self.promote not in PROMOTE_MODES:
            raise ConfigError(f"promote must be one of {', '.join(PROMOTE_MODES)}, got {self.promote!r}")
        if self.train_cpus is not None and not self.train_cpus >= 1:
            raise ConfigError(f"train_cpus must be >= 1, got {self.train_cpus}; e.g. 2 on a 2-core machine")
        if self.num_gpus < 0:
            raise ConfigError(f"num_gpus must be >= 0, got {self.num_gpus}")
        if "{dataset}" not in self.model_name and "{" in self.model_name:
            raise ConfigError(f"model_name {self.model_name!r} may only use the {{dataset}} placeholder")
        if not isinstance(self.sft_steps, int) or self.sft_steps < 0:
            raise ConfigError(f"sft_steps must be an integer >= 0 (0 = no SFT), got {self.sft_steps!r}")
        if self.sft_steps and self.init_from:
            raise ConfigError("sft_steps and init_from both give the starting policy; set sft_steps=0 or drop init_from")
        self.train_config()  # num_steps, batch/group sizes, algorithm, reward, ...: TrainConfig's own checks
        if self.runs_sft:
            self.sft_config()  # SFTConfig's own checks
        if not self.use_dummy:
            from rl4rec_core.policy.rec_policy import PolicyConfig

            PolicyConfig(model_name=self.policy_model, **self.policy_kwargs())  # LLM settings' own checks

    @property
    def registered_name(self) -> str:
        return self.model_name.format(dataset=self.dataset)

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus else "cpu"

    def output_dir(self, label: str | None = None) -> str:
        """A fresh folder per flow run, so a second run never meets the first one's checkpoints."""
        if self.checkpoint_dir:
            return self.checkpoint_dir
        label = label or time.strftime("run-%Y%m%d-%H%M%S")
        return str((paths.checkpoint_dir(self.dataset) / label).resolve())

    def train_config(self, output_dir: str | None = None, init_from: str | None = None):
        from rl4rec_core.training.config import TrainConfig

        return TrainConfig(
            dataset_name=self.dataset, num_steps=self.num_steps, batch_size=self.batch_size,
            group_size=self.group_size, algorithm=self.algorithm, learning_rate=self.learning_rate,
            kl_coef=self.kl_coef, reward=self.reward, num_negatives=self.num_negatives,
            save_every=self.save_every, log_every=max(1, self.num_steps // 20), seed=self.seed,
            use_dummy=self.use_dummy, policy_model=self.policy_model, checkpoint_dir=output_dir,
            init_from=init_from or self.init_from, progress=False,
        )

    @property
    def runs_sft(self) -> bool:
        return bool(self.sft_steps) and not self.use_dummy

    def sft_config(self, output_dir: str | None = None):
        from rl4rec_core.training.sft import SFTConfig

        return SFTConfig(
            dataset_name=self.dataset, policy_model=self.policy_model, num_steps=max(1, self.sft_steps),
            batch_size=self.sft_batch_size, micro_batch_size=self.sft_batch_size,
            learning_rate=self.sft_learning_rate, history_len=self.history_len, seed=self.seed,
            checkpoint_dir=output_dir, log_every=max(1, self.sft_steps // 20), progress=False, device=self.device,
        )

    def policy_kwargs(self) -> dict[str, Any]:
        """LLM settings for ``build_policy`` (only the ones given; the rest are the policy's defaults)."""
        given = {"history_len": self.history_len, "max_new_tokens": self.max_new_tokens,
                 "temperature": self.temperature}
        return {k: v for k, v in given.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
