"""A flow's parameters: the settings groups of ``rl4rec_core/settings.py`` plus where Ray places the work.

The flows take the groups as parameters (Prefect shows each as a form in its UI and builds them
from JSON for a deployment), and ``FlowParams`` checks what spans groups or touches disk before any
task runs, so a bad value costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from rl4rec_core import paths
from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import (
    AlgorithmSettings,
    EvaluationSettings,
    PolicySettings,
    RecipeSettings,
    RetrievalSettings,
    RunSettings,
    Settings,
    TrackingSettings,
    TrainerSettings,
    opt,
)


@dataclass(frozen=True)
class ResourceSettings:
    """What Ray gives the training and evaluation tasks."""

    num_gpus: float = opt(0.0, "GPUs of the training, evaluation and retrieval tasks (> 0 runs them on cuda)")
    train_cpus: float | None = opt(None, "CPUs (= torch threads) of the SFT and RL tasks (default: a whole node)")

    def __post_init__(self) -> None:
        if self.train_cpus is not None and not self.train_cpus >= 1:
            raise ConfigError(f"train_cpus must be >= 1, got {self.train_cpus}; e.g. 2 on a 2-core machine")
        if self.num_gpus < 0:
            raise ConfigError(f"num_gpus must be >= 0, got {self.num_gpus}")


# every group a flow can take, by parameter name
FLOW_GROUPS: dict[str, type] = {
    "run": RunSettings, "retrieval": RetrievalSettings, "policy": PolicySettings, "algorithm": AlgorithmSettings,
    "trainer": TrainerSettings, "recipe": RecipeSettings, "evaluation": EvaluationSettings,
    "tracking": TrackingSettings, "resources": ResourceSettings,
}


def split_by_group(flat: dict[str, Any], groups: tuple[str, ...] = tuple(FLOW_GROUPS)) -> dict[str, dict[str, Any]]:
    """Flat field names (as `rl4rec run`'s flags) -> ``{group: {field: value}}`` for a flow's ``groups``.

    ``use_dummy=True`` is the original's name for ``policy="dummy"``; a name no group has is an error.
    """
    flat = dict(flat)
    if flat.pop("use_dummy", False):
        flat.setdefault("policy", "dummy")
    out: dict[str, dict[str, Any]] = {}
    for name in groups:
        fields = {f.name for f in dataclasses.fields(FLOW_GROUPS[name])}
        out[name] = {k: flat.pop(k) for k in list(flat) if k in fields}
    if flat:
        raise ConfigError(f"unknown settings {sorted(flat)} for groups {', '.join(groups)}")
    return out


@dataclass(frozen=True)
class FlowParams(Settings):
    """A training run's ``Settings`` plus the groups of the steps around it in a flow."""

    recipe: RecipeSettings = field(default_factory=RecipeSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)

    def __post_init__(self) -> None:
        from rl4rec_core.data.prepare import BUILTIN, read_meta

        super().__post_init__()  # the checks that span the training groups (batch_size vs group_size)
        for name in self.run.datasets:  # each of a list, named on its own
            if self.run.source is None and name not in BUILTIN and read_meta(name) is None:
                raise ConfigError(
                    f"unknown dataset {name!r}: it is not built in ({', '.join(BUILTIN)}) and not prepared in "
                    f"{paths.dataset_dir(name)}; pass source= with its raw files or prepare it first with "
                    f"`rl4rec data prepare --dataset {name} --source DIR`"
                )
        if self.recipe.sft_steps and self.policy.init_from:
            raise ConfigError("sft_steps and init_from both give the starting policy; set sft_steps=0 or drop init_from")
        if self.runs_sft:
            self.sft_config()  # SFTConfig's own checks
        self._check_untuned_baselines()

    def _check_untuned_baselines(self) -> None:
        """echo+prior ranks with the tuned scorer: without tuning and without a tuned file, the run would fail at
        its very end (the baselines' evaluation), after training."""
        if self.recipe.tune_retrieval or "echo+prior" not in self.evaluation.baselines:
            return
        from rl4rec_core.retrieval.hybrid import settings_path

        r = self.retrieval
        missing = [n for n in self.run.datasets if not settings_path(n, r.emb_type, r.emb_model_name).exists()]
        if missing:
            raise ConfigError(
                f"the echo+prior baseline ranks with tuned retrieval settings, but tune_retrieval is off and "
                f"{', '.join(missing)} has none; turn tuning on, tune first (`rl4rec tune-retrieval --dataset "
                f"{missing[0]}`), or leave echo+prior out of the baselines (--baselines popularity echo)"
            )

    @property
    def dataset(self) -> str:
        return self.run.dataset_name

    @property
    def registered_name(self) -> str:
        # several datasets: rl4rec-ml-100k+beauty (MLflow refuses '/' and ':' in names, not '+')
        return self.tracking.registered_name(self.run.label)

    @property
    def device(self) -> str:
        return "cuda" if self.resources.num_gpus else self.run.device

    @property
    def runs_sft(self) -> bool:
        # SFT teaches one dataset's titles (SFTConfig has one dataset_name): a run on several skips it
        # rather than warm-start on one of them and bias the mixture (flows/stages.py warm_start logs why)
        return bool(self.recipe.sft_steps) and not self.policy.use_dummy and not self.multi

    @property
    def multi(self) -> bool:
        """Whether the run trains on several datasets (``dataset_name`` is a comma-separated list)."""
        return len(self.run.datasets) > 1

    def output_dir(self, label: str | None = None) -> str:
        """A fresh folder per flow run, so a second run never meets the first one's checkpoints."""
        if self.trainer.checkpoint_dir:
            return self.trainer.checkpoint_dir
        label = label or time.strftime("run-%Y%m%d-%H%M%S")
        return str((paths.checkpoint_dir(self.dataset) / label).resolve())

    def settings(self, output_dir: str | None = None, init_from: str | None = None) -> Settings:
        """The training run's settings, with its output folder and starting policy filled in."""
        run = dataclasses.replace(self.run, device=self.device)
        policy = dataclasses.replace(self.policy, init_from=init_from or self.policy.init_from)
        trainer = dataclasses.replace(self.trainer, checkpoint_dir=output_dir or self.trainer.checkpoint_dir)
        return Settings(run=run, retrieval=self.retrieval, policy=policy, algorithm=self.algorithm, trainer=trainer)

    def sft_config(self, output_dir: str | None = None):
        from rl4rec_core.training.sft import SFTConfig

        r, p = self.recipe, self.policy
        # SFT learns the very prompt RL will use
        prompt = {k: v for k in ("history_len", "prompt_template", "response_prefix") if (v := getattr(p, k)) is not None}
        return SFTConfig(
            dataset_name=self.dataset, policy_model=p.policy_model, num_steps=max(1, r.sft_steps),
            batch_size=r.sft_batch_size, micro_batch_size=r.sft_batch_size, learning_rate=r.sft_learning_rate,
            lora_r=p.lora_r, seed=self.run.seed, checkpoint_dir=output_dir,
            log_every=max(1, r.sft_steps // 20), progress=False, device=self.device, **prompt,
        )
