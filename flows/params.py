"""A flow's parameters: a training run's ``Settings`` and the groups of the steps around it.

The flows take the settings groups of ``rl4rec_core/settings/`` as parameters (Prefect shows each as a form
in its UI and builds them from JSON for a deployment); ``FlowParams`` holds them, says what spans groups
(the device Ray gives the work, whether SFT runs, the registered name), and ``check_inputs`` looks at the
disk before any task runs, so a bad value costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl4rec_core import paths
from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import (
    GROUPS,
    EvaluationSettings,
    RecipeSettings,
    ResourceSettings,
    SASRecSettings,
    Settings,
    TrackingSettings,
    placed_device,
)


@dataclass(frozen=True)
class FlowParams:
    """What a flow runs with: ``settings`` (one training run) and the recipe, evaluation, tracking and
    resources groups, and SASRec's (the base recommender). ``run``, ``retrieval``, ``policy``, ``algorithm`` and
    ``trainer`` are ``settings``'."""

    settings: Settings = field(default_factory=Settings)
    recipe: RecipeSettings = field(default_factory=RecipeSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    sasrec: SASRecSettings = field(default_factory=SASRecSettings)

    def __post_init__(self) -> None:
        if self.runs_sft:
            self.sft_config()  # SFTConfig's own checks

    @classmethod
    def of(cls, **groups: Any) -> FlowParams:
        """From a flow's group parameters (``run=..., policy=..., recipe=...``); a group not given: its defaults."""
        training = {name: groups.pop(name) for name in list(groups) if name in GROUPS}
        return cls(Settings(**training), **groups)

    @property
    def run(self):
        return self.settings.run

    @property
    def retrieval(self):
        return self.settings.retrieval

    @property
    def policy(self):
        return self.settings.policy

    @property
    def algorithm(self):
        return self.settings.algorithm

    @property
    def trainer(self):
        return self.settings.trainer

    @property
    def fusion(self):
        return self.settings.fusion

    def check_inputs(self) -> FlowParams:
        """What must be on disk: each dataset (built in or prepared), the ``init_from`` policy, a ``checkpoint_dir``
        that is not a file, and the tuned file echo+prior ranks with when tuning is off (else the run would fail
        at its very end, after training). Returns itself."""
        from rl4rec_core.data.prepare import BUILTIN, read_meta

        for name in self.run.datasets:  # each of a list, named on its own
            if self.run.source is None and name not in BUILTIN and read_meta(name) is None:
                raise ConfigError(
                    f"unknown dataset {name!r}: it is not built in ({', '.join(BUILTIN)}) and not prepared in "
                    f"{paths.dataset_dir(name)}; pass source= with its raw files or prepare it first with "
                    f"`rl4rec data prepare --dataset_name {name} --source DIR`"
                )
        if self.policy.init_from:  # the given start (it replaces SFT): a missing folder fails here, not in training
            from rl4rec_core.policy.warm_start import resolve_policy_dir

            resolve_policy_dir(self.policy.init_from)
        checkpoint_dir = self.trainer.checkpoint_dir
        if checkpoint_dir and Path(checkpoint_dir).expanduser().is_file():
            raise ConfigError(f"checkpoint_dir {checkpoint_dir} is a file, not a folder. Fix: pass a folder path "
                              f"(a new one is created), or move the file away")
        self._check_untuned_baselines()
        return self

    def _check_untuned_baselines(self) -> None:
        r = self.retrieval
        if self.recipe.tune_retrieval or "echo+prior" not in self.evaluation.baselines or r.weight_overrides:
            return
        from rl4rec_core.retrieval.hybrid import settings_path

        missing = [n for n in self.run.datasets if not settings_path(n, r.emb_type, r.emb_model_name).exists()]
        if missing:
            raise ConfigError(
                f"the echo+prior baseline ranks with tuned retrieval settings, but tune_retrieval is off and "
                f"{', '.join(missing)} has none; turn tuning on, tune first (`rl4rec tune-retrieval --dataset_name "
                f"{missing[0]}`), give the weights (--beta, --history_m), or leave echo+prior out of the baselines "
                "(--baselines popularity echo)"
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
        return placed_device(self.run, self.resources)

    @property
    def runs_sft(self) -> bool:
        """SFT warm-starts the policy unless the recipe says none, a given ``init_from`` replaces it, the policy is
        the dummy, or the run is on several datasets (SFT teaches one dataset's titles: it would bias the
        mixture; ``flows/stages.py`` warm_start logs why)."""
        return (bool(self.recipe.sft_steps) and not self.policy.init_from and self.policy.policy != "dummy"
                and not self.multi)

    @property
    def multi(self) -> bool:
        """Whether the run trains on several datasets (``dataset_name`` is a comma-separated list)."""
        return len(self.run.datasets) > 1

    def run_dir(self, label: str | None = None) -> str:
        """A fresh folder per flow run, so a second run never meets the first one's checkpoints."""
        if self.trainer.checkpoint_dir:
            return self.trainer.checkpoint_dir
        label = label or time.strftime("run-%Y%m%d-%H%M%S")
        return str((paths.checkpoint_dir(self.dataset) / label).resolve())

    def training_settings(self, output_dir: str | None = None, init_from: str | None = None) -> Settings:
        """The training run's settings, with its device, output folder and starting policy filled in."""
        return self.settings.replace(run={"device": self.device},
                                     policy={"init_from": init_from or self.policy.init_from},
                                     trainer={"checkpoint_dir": output_dir or self.trainer.checkpoint_dir})

    def sft_config(self, output_dir: str | None = None):
        """The SFT warm start's config: the run's dataset, seed and device, its policy (SFT learns the very
        prompt RL will use), the recipe, and the output folder (about 20 console lines)."""
        from rl4rec_core.training.sft import SFTConfig

        trainer = dataclasses.replace(self.trainer, checkpoint_dir=output_dir, resume=False, override_config=False,
                                      log_every=max(1, self.recipe.sft_steps // 20))
        return SFTConfig(run=dataclasses.replace(self.run, device=self.device), policy=self.policy,
                         recipe=self.recipe, trainer=trainer, progress=False, fusion=self.fusion)

    def to_dict(self) -> dict[str, Any]:
        """Every group as one tree (``run`` ... ``resources``): what MLflow records."""
        return {**self.settings.to_dict(), **{name: dataclasses.asdict(getattr(self, name))
                                              for name in ("recipe", "evaluation", "tracking", "resources", "sasrec")}}
