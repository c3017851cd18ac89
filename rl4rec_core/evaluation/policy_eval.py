"""Evaluate a text policy as a recommender: greedy text per user -> retrieval rank of the held-out item.

``evaluate_policy`` is what ``rl4rec evaluate --checkpoint/--policy``, the flows and ``rl4rec ab`` call; ``paired_bootstrap`` says
whether one policy beats another on the same users; ``load_policy`` rebuilds a policy (dummy or LLM)
from a checkpoint folder, trained or as it was before training.

With ``fusion`` (a base set) the prompts show each user's candidates, the base's top-K of the history alone
from the service's ``candidates``, and with ``fusion.constrained`` the greedy text is one of their titles;
``scorer`` picks how the service ranks the text (``fused``: with the base; None: the service's own scorer,
the text-only channel).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rl4rec_core import metrics
from rl4rec_core.checkpoints import policy_kind, resolve_checkpoint, verify_checkpoint
from rl4rec_core.data.dataset import SPLITS
from rl4rec_core.errors import ConfigError, MissingArtifactError, Rl4recError
from rl4rec_core.progress import bars_wanted

log = logging.getLogger(__name__)


def load_policy(checkpoint: str | Path, trained: bool = True, device: str = "cpu"):
    """The policy saved in ``checkpoint`` (a checkpoint folder or a run folder holding them).

    ``trained=False`` rebuilds the same policy before any update (the "untrained" comparison): the
    dummy policy at its uniform start, the LLM as its base model (with a fresh LoRA adapter, which is
    a no-op until trained). A damaged or hostile checkpoint is a one-line ``DataError``: its manifest
    is verified first, and nothing in it is unpickled.
    """
    path = resolve_checkpoint(checkpoint)
    verify_checkpoint(path)
    policy_dir = path / "policy"
    if policy_kind(path) == "dummy":
        from rl4rec_core.policy.dummy import DummyRecPolicy

        return DummyRecPolicy.from_dir(policy_dir, trained=trained)
    from rl4rec_core.policy.rec_policy import RecPolicy

    return RecPolicy.from_pretrained(policy_dir, trained=trained, device=device)


def select_users(num_users: int, max_users: int | None, seed: int = 0) -> np.ndarray:
    """Row indices of the evaluated users: all, or a seeded sorted subset of ``max_users``."""
    if max_users is None or max_users >= num_users:
        return np.arange(num_users)
    if max_users < 1:
        raise ConfigError(f"max_users must be >= 1, got {max_users}")
    return np.sort(np.random.default_rng(seed).choice(num_users, size=max_users, replace=False))


def evaluate_policy(
    dataset,
    policy,
    split: str = "valid",
    service=None,
    users: np.ndarray | None = None,
    ks: Sequence[int] = metrics.DEFAULT_KS,
    batch_size: int = 32,
    progress: bool = False,
    device: str = "cpu",
    fusion=None,
    scorer: str | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """Greedy generation for each user of ``split``, ranked against every item by the retrieval service.

    Args:
        dataset: a loaded ``Dataset`` (or its name).
        policy: a policy object, or a checkpoint folder (:func:`load_policy`, built on ``device``).
        split: ``valid`` (history seq[:-2] -> seq[-2]), ``test`` or ``train``.
        service: a reward source with ``compute_rewards`` (plain RetrievalService or its Ray client).
        users: the split's rows to evaluate (:func:`select_users`: the same seed, the same users; a paired
            comparison needs the same rows for every system); default: every user.
        fusion: the run's ``FusionSettings``; with a base, candidates in the prompt (module docstring).
        scorer: passed to the service's ``compute_rewards`` when given (``fused``, ``cosine``, ``hybrid``).
    Returns:
        ``(metrics, ranks)``: ``summarize`` of the ranks (``hit@k``, ``ndcg@k``, ``mrr``) and the
        1-based rank per evaluated user, long ``[U]``, in ``users`` order, for paired tests.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if service is None:
        raise ConfigError(
            "evaluate_policy needs a retrieval service (service=RetrievalService(...) or a Ray client); "
            "the CLI builds one from the retrieval settings and --service"
        )
    if isinstance(dataset, str):
        from rl4rec_core.data import load_dataset

        dataset = load_dataset(dataset)
    if isinstance(policy, (str, Path)):
        policy = load_policy(policy, device=device)
    sp = dataset.split(split)
    rows = np.arange(len(sp.histories)) if users is None else np.asarray(users)
    ranks: list[torch.Tensor] = []
    described = None  # the scorer the service says it ranked with
    for start in tqdm(range(0, len(rows), batch_size), desc=f"eval {split}", disable=not bars_wanted(progress)):
        batch = rows[start : start + batch_size]
        histories = [list(map(int, sp.histories[i])) for i in batch]
        targets = [int(sp.targets[i]) for i in batch]
        texts = _greedy_texts(policy, dataset.item_titles, histories, service, dataset.name, fusion)
        out = _rank_texts(service, texts, dataset.name, targets, histories, scorer)
        ranks.append(torch.as_tensor(out.ranks).reshape(-1).long().cpu())  # any reward source's device
        described = getattr(out, "scorer", None)
    all_ranks = torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)
    if len(all_ranks) == 0:
        raise MissingArtifactError(f"split {split!r} of {dataset.name!r} has no users to evaluate")
    summary: dict = metrics.summarize(all_ranks, ks)
    if described:
        summary["scorer"] = described
    return summary, all_ranks


def _rank_texts(service, texts: list[str], dataset_name: str, targets: list[int], histories: list[list[int]],
                scorer: str | None = None):
    """The service's answer for these texts (its ``ranks`` of the targets), any failure as an Rl4recError."""
    try:
        return service.compute_rewards(
            texts, dataset_name, targets=targets, histories=histories, reward="mrr", num_negatives=0,
            **({} if scorer is None else {"scorer": scorer}),
        )
    except Rl4recError:
        raise
    except Exception as e:
        raise Rl4recError(
            f"the retrieval service failed or is unreachable ({type(e).__name__}: {e}); start it with "
            f"`rl4rec serve` or use --service local"
        ) from e


def _greedy_texts(policy, titles: list[str], histories: list[list[int]], service=None, dataset_name: str = "",
                  fusion=None) -> list[str]:
    """Greedy text per history; with a base (``fusion``) the prompt shows the service's candidates of each history."""
    if fusion is None or fusion.base == "none":
        prompts = policy.build_prompts([[titles[i] for i in h] for h in histories])
        return policy.generate(prompts, num_samples=1, greedy=True)
    if service is None or not callable(getattr(service, "candidates", None)):
        raise ConfigError(f"--base {fusion.base} shows the base's candidates in the prompt: the evaluation needs a "
                          "retrieval service with candidates(dataset_name, histories, k)")
    try:
        rows = torch.as_tensor(service.candidates(dataset_name, histories, fusion.num_candidates)).long().tolist()
    except Rl4recError:
        raise
    except Exception as e:
        raise Rl4recError(f"the retrieval service failed to give the base's candidates ({type(e).__name__}: {e}); "
                          "start it with `rl4rec serve` or use --service local") from e
    shown = [[titles[j] for j in row] for row in rows]
    prompts = policy.build_prompts([[titles[i] for i in h] for h in histories], candidates=shown)
    return policy.generate(prompts, num_samples=1, greedy=True, **({"candidates": shown} if fusion.constrained else {}))


def generate_split_texts(
    dataset, policy, split: str = "valid", batch_size: int = 32, progress: bool = False, service=None, fusion=None,
    users: np.ndarray | None = None,
) -> list[str]:
    """The policy's greedy text for every user of ``split`` (or the rows ``users``), in that order; with a base
    (``fusion``) from the candidates prompt, the candidates from ``service``."""
    sp = dataset.split(split)
    rows = np.arange(len(sp)) if users is None else np.asarray(users)
    texts: list[str] = []
    for start in tqdm(range(0, len(rows), batch_size), desc=f"generate {split}", disable=not bars_wanted(progress)):
        histories = [list(map(int, sp.histories[i])) for i in rows[start : start + batch_size]]
        texts += _greedy_texts(policy, dataset.item_titles, histories, service, dataset.name, fusion)
    return texts


def paired_bootstrap(
    per_user_a, per_user_b, n: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over users and its percentile bootstrap interval ``(mean, lo, hi)``.

    ``a`` and ``b`` are per-user metric values ``[U]`` of two systems on the *same* users in the same
    order (e.g. ``metrics.ndcg_at_k(ranks, 10)``); users are resampled with replacement ``n`` times
    (``scipy.stats.bootstrap(paired=True)``, percentile method, in batches that keep memory small).
    An interval that excludes 0 means the difference is unlikely to be resampling noise.
    """
    a = np.asarray(torch.as_tensor(per_user_a, dtype=torch.float64))
    b = np.asarray(torch.as_tensor(per_user_b, dtype=torch.float64))
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ConfigError(f"paired bootstrap needs two equal-length 1-D per-user vectors, got {a.shape} and {b.shape}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    from scipy.stats import bootstrap

    res = bootstrap(
        (a, b), lambda x, y, axis=-1: (x - y).mean(axis=axis), paired=True, vectorized=True,
        n_resamples=n, batch=256, confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    diff = a - b
    return float(diff.mean()), float(lo), float(hi)


def checkpoint_texts(dataset, checkpoint: str | Path, split: str = "valid", device: str = "cpu",
                     progress: bool = False, service=None, fusion=None) -> list[str]:
    """The greedy text of ``checkpoint``'s trained policy for every user of ``split`` (what tuning fuses);
    with a base (``fusion``), from the candidates prompt (candidates from ``service``)."""
    if isinstance(dataset, str):
        from rl4rec_core.data import load_dataset

        dataset = load_dataset(dataset)
    return generate_split_texts(dataset, load_policy(checkpoint, device=device), split, progress=progress,
                                service=service, fusion=fusion)
