"""The settings of the steps around training: ``recipe`` (scorer tuning, SFT), ``evaluation``, ``tracking``
(MLflow, model registry), ``resources`` (Ray placement) and ``sasrec`` (the base recommender); every group by name, and the profiles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import names as n
from rl4rec_core.settings.fields import (check_mlflow_names, choice, default_of, field_names, integer, number, opt,
                                         split_fields, user_count)
from rl4rec_core.settings.training import GROUPS, RunSettings


@dataclass(frozen=True)
class RecipeSettings:
    """The pipeline's steps before RL (docs/recipe.md): tune the hybrid scorer, warm-start by SFT (`rl4rec sft`)."""

    tune_retrieval: bool = opt(True, "tune the hybrid scorer on validation before training")
    sft_steps: int = opt(250, "SFT warm-start steps before RL (0 = none; LLM policies only; a given --init_from "
                         "replaces it)")
    sft_batch_size: int = opt(8, "SFT examples (user positions) per step")
    sft_learning_rate: float = opt(5e-4, "SFT LoRA learning rate")
    # longer answers are cut, and lose their EOS (they did not end there)
    sft_max_answer_tokens: int = opt(48, "SFT answer tokens learnt, EOS included (also the SFT policy's "
                                     "generation length)")
    sft_positions_per_user: int | None = opt(None, "SFT on each user's K most recent training positions "
                                             "(default: all)")

    def __post_init__(self) -> None:
        integer("sft_steps", self.sft_steps, minimum=0)
        integer("sft_batch_size", self.sft_batch_size)
        integer("sft_max_answer_tokens", self.sft_max_answer_tokens)
        if self.sft_positions_per_user is not None:
            integer("sft_positions_per_user", self.sft_positions_per_user, hint=" (or leave it unset)")
        number("sft_learning_rate", self.sft_learning_rate, strict=True, example="5e-4")


@dataclass(frozen=True)
class EvaluationSettings:
    """How a policy is judged: which split, how many users, beside which baselines, with what intervals."""

    eval_split: str = opt("test", "held-out split evaluated", choices=n.EVAL_SPLITS, aliases=("--split",))
    eval_users: int | None = opt(None, "a seeded subset of N users of the split (default, or 0: every user)",
                                 aliases=("--max_users",))
    baselines: list[str] = opt(n.DEFAULT_BASELINES, f"baselines evaluated beside the policy ({', '.join(n.BASELINES)}, "
                               "or all; none: the flag alone)", aliases=("--baseline",))
    evaluate_untrained: bool = opt(True, "also evaluate a checkpoint's starting policy on the same users",
                                   aliases=("--with_untrained",))
    confidence: float = opt(0.95, "level of the paired bootstrap intervals")
    n_bootstrap: int = opt(1000, "bootstrap resamples of the paired intervals")

    def __post_init__(self) -> None:
        choice("eval_split", self.eval_split, n.EVAL_SPLITS)
        user_count(self, "eval_users")
        if "all" in self.baselines:
            object.__setattr__(self, "baselines", list(n.BASELINES))
        unknown = [b for b in self.baselines if b not in n.BASELINES]
        if unknown:
            raise ConfigError(f"unknown baselines {unknown}; choose from {', '.join(n.BASELINES)} (or all)")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}; e.g. --confidence 0.95")
        integer("n_bootstrap", self.n_bootstrap)


@dataclass(frozen=True)
class TrackingSettings:
    """Where results are recorded: the MLflow experiment and the registered model."""

    experiment: str = opt(n.DEFAULT_EXPERIMENT, "MLflow experiment")
    model_name: str = opt(n.MODEL_NAME_TEMPLATE, "registered model name; {dataset} is filled in")
    promote: str = opt("first", "make the new version 'champion': only if there is none (first), always, never",
                       choices=n.PROMOTE_MODES)
    log_transformers: bool = opt(False, "also register an LLM policy as an mlflow.transformers model (merged weights)")

    def __post_init__(self) -> None:
        choice("promote", self.promote, n.PROMOTE_MODES)
        if self.model_name.replace("{dataset}", "").count("{") or "}" in self.model_name.replace("{dataset}", ""):
            raise ConfigError(f"model_name {self.model_name!r} may only use the {{dataset}} placeholder")
        check_mlflow_names(self.experiment, self.model_name)  # MLflow would refuse them after the whole run

    def registered_name(self, dataset: str) -> str:
        """``rl4rec-ml-100k``: ``model_name`` for ``dataset`` (a run's label, ``ml-100k+beauty`` for several)."""
        return self.model_name.replace("{dataset}", dataset)


@dataclass(frozen=True)
class ResourceSettings:
    """What Ray gives the work: GPUs (> 0 runs it on cuda) and the CPUs of the training tasks."""

    num_gpus: float = opt(0.0, "GPUs of the training, evaluation and retrieval tasks, or of the `rl4rec serve` "
                          "actor (> 0 runs them on cuda)")
    train_cpus: float | None = opt(None, "CPUs (= torch threads) of the SFT and RL tasks (default: a whole node)")

    def __post_init__(self) -> None:
        if self.train_cpus is not None:
            number("train_cpus", self.train_cpus, minimum=1, example="2")
        number("num_gpus", self.num_gpus, example="1")


@dataclass(frozen=True)
class SASRecSettings:
    """SASRec, the base recommender (`rl4rec sasrec`): its model, its training and its early stopping."""

    sasrec_max_len: int = opt(50, "newest history items SASRec reads (older ones are dropped)")
    sasrec_hidden: int = opt(64, "width of SASRec's item/position embeddings and blocks")
    sasrec_layers: int = opt(2, "SASRec's causal self-attention blocks")
    sasrec_heads: int = opt(1, "attention heads per SASRec block; must divide --sasrec_hidden")
    sasrec_dropout: float = opt(0.2, "SASRec dropout on embeddings, attention weights and block outputs")
    sasrec_learning_rate: float = opt(1e-3, "SASRec AdamW step size")
    sasrec_weight_decay: float = opt(0.0, "SASRec AdamW decoupled weight decay")
    sasrec_batch_size: int = opt(128, "SASRec training windows per step")
    sasrec_max_epochs: int = opt(50, "cap on SASRec's passes over the training windows (bounds its time: ML-100k "
                                  "peaks near epoch 30)")
    sasrec_patience: int = opt(5, "SASRec stops after this many epochs without a validation NDCG@10 gain")
    sasrec_seed: int = opt(0, "seed of SASRec's init, dropout and shuffling")

    def __post_init__(self) -> None:
        for name in ("sasrec_max_len", "sasrec_hidden", "sasrec_layers", "sasrec_heads", "sasrec_batch_size",
                     "sasrec_max_epochs", "sasrec_patience"):
            integer(name, getattr(self, name))
        integer("sasrec_seed", self.sasrec_seed, minimum=0)
        if self.sasrec_hidden % self.sasrec_heads:
            raise ConfigError(f"sasrec_hidden={self.sasrec_hidden} is not divisible by sasrec_heads="
                              f"{self.sasrec_heads}; choose heads that divide it, e.g. --sasrec_heads 1")
        number("sasrec_dropout", self.sasrec_dropout, example="0.2")
        if self.sasrec_dropout >= 1:
            raise ConfigError(f"sasrec_dropout must be in [0, 1), got {self.sasrec_dropout}; e.g. --sasrec_dropout 0.2")
        number("sasrec_learning_rate", self.sasrec_learning_rate, strict=True, example="1e-3")
        number("sasrec_weight_decay", self.sasrec_weight_decay, example="0.01")


# every group by name: a training run's (GROUPS) and the steps' around it; a flow takes them as parameters
ALL_GROUPS: dict[str, type] = {**GROUPS, "recipe": RecipeSettings, "evaluation": EvaluationSettings,
                               "tracking": TrackingSettings, "resources": ResourceSettings,
                               "sasrec": SASRecSettings}
# what `rl4rec run` (and the pipeline deployments) change from the settings' defaults, by profile:
#   recipe (the default of `rl4rec run` and of the pipeline deployment): the fused recipe of docs/recipe.md, SASRec
#     as the base, its top 5 in the prompt, constrained decoding; sized for about an hour on 2 CPU cores
#     (measured 67 min, ~70 with SASRec's training: docs/recipe.md);
#   text: the settings' own defaults, the text-only design (no base);
#   quick (`--quick`, the pipeline-quick deployment): the dummy policy, 20 steps, no SFT, 100 users.
PROFILES: dict[str, dict[str, Any]] = {
    "recipe": {"base": "sasrec", "num_candidates": 5, "constrained": True, "history_len": 5, "sft_steps": 40,
               "num_steps": 24},
    "text": {},
    "quick": {"policy": "dummy", "num_steps": 20, "save_every": 10, "kl_coef": 0.0, "sft_steps": 0,
              "eval_users": 100},
}
DEFAULT_RUN_PROFILE = "recipe"


def group_of(field_name: str) -> str:
    """The group that has ``field_name`` (every field name is unique across the groups)."""
    for name, cls in ALL_GROUPS.items():
        if field_name in field_names(cls):
            return name
    raise ConfigError(f"unknown setting {field_name!r}; the settings are the fields of rl4rec_core/settings/")


def groups_of(flat: dict[str, Any], names: tuple[str, ...] = tuple(ALL_GROUPS)) -> dict[str, Any]:
    """Flat field names (as the flags have them) -> ``{group: group object}`` for the groups ``names``."""
    fields = split_fields(flat, {g: ALL_GROUPS[g] for g in names})
    return {g: ALL_GROUPS[g](**values) for g, values in fields.items()}


def apply_profile(groups: dict[str, Any], profile: str | None, given: set[str] | None = None) -> dict[str, Any]:
    """``groups`` with ``PROFILES[profile]``'s values. With ``given`` (the fields a command line named), those
    keep their value; without (a deployment's parameters), only fields still at their default take the profile's.
    """
    if not profile:
        return groups
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out = dict(groups)
    for key, value in PROFILES[profile].items():
        name = group_of(key)
        group = out.get(name) or ALL_GROUPS[name]()
        default = default_of(next(f for f in dataclasses.fields(group) if f.name == key))
        keep = key in given if given is not None else getattr(group, key) != default
        if name in out and not keep:
            out[name] = dataclasses.replace(group, **{key: value})
    return out


def placed_device(run: RunSettings, resources: ResourceSettings) -> str:
    """Where the work runs: cuda when Ray gives it GPUs (what a task sees then), else the run's device."""
    return "cuda" if resources.num_gpus and not run.device.startswith("cuda") else run.device
