"""Every setting of rl4rec, defined once: the defaults, what each one means, and its checks.

A run is a tree of groups (``Settings``, ``training.py``): ``run`` (which data, seed, device),
``retrieval`` (the service that scores texts, and the hybrid scorer's weights), ``policy`` (model, LoRA,
sampling, prompt), ``algorithm`` (reward, policy-gradient maths, optimiser), ``trainer`` (steps, batch,
checkpoints), ``fusion`` (the base recommender fused with the text, the prompt's candidates). The steps around training add ``recipe`` (scorer tuning, SFT warm start), ``evaluation``,
``tracking`` (MLflow, model registry), ``resources`` (Ray placement) and ``sasrec`` (the base
recommender's training) (``steps.py``). ``names.py`` holds
the name tables the registries check against; ``fields.py`` how a field is declared.

Every ``rl4rec`` command's flags are generated from these fields (``cli/flags.py``) with the field's
name, and the flows take the groups as parameters, so a name, a default and a check exist in one place
only. Each field's ``help`` is the text of its flag. This package imports the standard library only:
building a settings object (or a parser) loads no torch, pandas or user code.
"""

from rl4rec_core.settings.fields import check_encoding, default_of, field_names, flatten, opt, split_fields
from rl4rec_core.settings.names import (
    ALGORITHMS,
    ALPHA_GRID,
    BASELINES,
    BASES,
    BETA_GRID,
    DEFAULT_ACTOR_NAME,
    DEFAULT_BASELINES,
    DEFAULT_DATASET,
    DEFAULT_EMB_MODEL,
    DEFAULT_ENCODING,
    DEFAULT_EXPERIMENT,
    DEFAULT_LEARNING_RATES,
    DEFAULT_POLICY_MODEL,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_REWARD,
    DEVICE_HELP,
    DTYPES,
    EMB_BACKENDS,
    ENGINES,
    EVAL_SPLITS,
    FORMATS,
    GAMMA_GRID,
    M_GRID,
    MAX_SEED,
    ML_100K,
    MODEL_NAME_TEMPLATE,
    POLICIES,
    PROMOTE_MODES,
    RAY_NAMESPACE,
    REWARD_FAMILIES,
    REWARDS,
    SCORERS,
    SERVICE_MODES,
    UNKNOWN_ITEM_POLICIES,
    UNTUNED_GAMMA,
    UNTUNED_WEIGHTS,
)
from rl4rec_core.settings.steps import (
    ALL_GROUPS,
    DEFAULT_RUN_PROFILE,
    PROFILES,
    EvaluationSettings,
    RecipeSettings,
    ResourceSettings,
    SASRecSettings,
    TrackingSettings,
    apply_profile,
    group_of,
    groups_of,
    placed_device,
)
from rl4rec_core.settings.training import (
    GROUPS,
    AlgorithmSettings,
    FusionSettings,
    PolicySettings,
    RetrievalSettings,
    RunSettings,
    Settings,
    TrainerSettings,
)

__all__ = [
    "ALGORITHMS", "ALL_GROUPS", "ALPHA_GRID", "BASELINES", "BASES", "BETA_GRID", "DEFAULT_ACTOR_NAME", "DEFAULT_BASELINES", "DEFAULT_DATASET",
    "DEFAULT_EMB_MODEL", "DEFAULT_ENCODING", "DEFAULT_EXPERIMENT", "DEFAULT_LEARNING_RATES", "DEFAULT_POLICY_MODEL",
    "DEFAULT_PROMPT_TEMPLATE", "DEFAULT_REWARD", "DEFAULT_RUN_PROFILE", "DEVICE_HELP", "DTYPES", "EMB_BACKENDS", "ENGINES", "EVAL_SPLITS", "FORMATS", "GAMMA_GRID", "GROUPS", "M_GRID", "MAX_SEED", "ML_100K",
    "MODEL_NAME_TEMPLATE", "POLICIES", "PROFILES", "PROMOTE_MODES", "RAY_NAMESPACE", "REWARDS", "REWARD_FAMILIES",
    "SCORERS", "SERVICE_MODES", "UNKNOWN_ITEM_POLICIES", "UNTUNED_GAMMA", "UNTUNED_WEIGHTS", "AlgorithmSettings", "FusionSettings", "EvaluationSettings", "PolicySettings",
    "RecipeSettings", "ResourceSettings", "SASRecSettings", "RetrievalSettings", "RunSettings", "Settings", "TrackingSettings",
    "TrainerSettings", "apply_profile", "check_encoding", "default_of", "field_names", "flatten", "group_of",
    "groups_of", "opt", "placed_device", "split_fields",
]
