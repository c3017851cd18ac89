"""Which environment variables reach Ray workers and the retrieval actor: an allow-list of names.

A deny-pattern misses credentials it does not foresee (``PGPASSWORD``, ``DATABASE_URL`` with a password,
``AZURE_STORAGE_CONNECTION_STRING``, ``OPENAI_APIKEY``, ``GITHUB_PAT`` all passed one), so only what the
work needs is named here, each variable by its name:

- ``WORKER``: what a worker must see to find the same files and models and behave the same: rl4rec's own
  settings, the Hugging Face / transformers / torch switches and caches, ``PYTHONPATH`` (user rewards
  named ``pkg.module:fn`` import there). ``paths.worker_env`` sends these in every ``runtime_env``.
- MLflow's and Prefect's connection settings are the flows' (``tasks/runtime.py`` names them and adds them).
- ``PROCESS``: what any process needs to run at all (``PATH``, ``HOME``, the locale, the temporary folder,
  the Python environment, which GPUs it may use). A local Ray that rl4rec starts is started with only
  these, the names above and Ray's own ``RAY_*`` settings (its processes need ``RAY_AUTH_TOKEN``): its
  workers inherit the raylet's environment whatever a ``runtime_env`` says.
- A variable the user wants on the workers as well (a token for a private model, an API key) is named in
  ``RL4REC_WORKER_SECRETS="HF_TOKEN,PREFECT_API_KEY"``: the one way to add names.

A cluster someone started with ``ray start --head`` is out of rl4rec's reach: its workers inherit that
shell's whole environment (README, section 4).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

SECRETS_VAR = "RL4REC_WORKER_SECRETS"

RL4REC = ("RL4REC_DATA_DIR", "RL4REC_EMB_DIR", "RL4REC_CACHE_DIR", "RL4REC_CHECKPOINT_ROOT", "RL4REC_EMB_BACKEND",
          "RL4REC_QUIET", "RL4REC_PREFECT_RESULTS", SECRETS_VAR)
HUGGING_FACE = (
    "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_DATASETS_CACHE", "HF_MODULES_CACHE",
    "HF_ASSETS_CACHE", "HF_XET_CACHE", "HF_ENDPOINT", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT", "TRANSFORMERS_OFFLINE", "TRANSFORMERS_CACHE",
    "TOKENIZERS_PARALLELISM", "SENTENCE_TRANSFORMERS_HOME",
)
TORCH = ("TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "PYTORCH_CUDA_ALLOC_CONF", "CUBLAS_WORKSPACE_CONFIG",
         "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VLLM_CPU_KVCACHE_SPACE",
         "VLLM_CPU_OMP_THREADS_BIND", "VLLM_LOGGING_LEVEL", "NCCL_DEBUG", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME")
OUTPUT = ("PYTHONPATH", "TQDM_DISABLE", "NO_COLOR", "RAY_AUTH_MODE")
WORKER = RL4REC + HUGGING_FACE + TORCH + OUTPUT

PROCESS = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_MESSAGES",
    "TZ", "TMPDIR", "TEMP", "TMP", "TERM", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONHASHSEED",
    "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "LD_LIBRARY_PATH", "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "NVIDIA_VISIBLE_DEVICES",
)
RAY_PREFIX = "RAY_"  # Ray's own settings (hundreds of RAY_* flags), read by its raylet, GCS and workers


def named_by_user() -> tuple[str, ...]:
    """The variable names listed in ``RL4REC_WORKER_SECRETS`` (comma- or space-separated)."""
    return tuple(n for n in os.environ.get(SECRETS_VAR, "").replace(",", " ").split() if n)


def for_workers(extra: Iterable[str] = ()) -> set[str]:
    """Names a worker's ``runtime_env`` may carry: :data:`WORKER`, ``extra`` and the user's named ones."""
    return set(WORKER) | set(extra) | set(named_by_user())


def for_a_new_ray(extra: Iterable[str] = ()) -> set[str]:
    """Names a local Ray that rl4rec starts may inherit (besides ``RAY_*``): :data:`PROCESS` and what
    :func:`for_workers` allows."""
    return set(PROCESS) | for_workers(extra)


def left_out(extra: Iterable[str] = ()) -> list[str]:
    """This process's variables that a new local Ray does not get."""
    allowed = for_a_new_ray(extra)
    return sorted(k for k in os.environ if k not in allowed and not k.startswith(RAY_PREFIX))
