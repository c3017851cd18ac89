"""Evaluation tasks: a policy (trained or as it started) and the baselines, on the same users."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from rl4rec_core.settings import FusionSettings, RetrievalSettings
from tasks.service import ServiceRef, service_client


# evaluation only reads; repeating it after a lost worker is harmless
@task(name="evaluate_policy", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def evaluate_policy(
    dataset: str,
    checkpoint: str,
    service: ServiceRef,
    split: str,
    max_users: int | None,
    seed: int,
    trained: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """``{"metrics": {hit@k, ndcg@k, mrr, users}, "ranks": [U] 1-based}`` of the checkpoint's policy.

    The users are ``select_users(len(split), max_users, seed)``: the same seed gives the same users,
    which is what the paired comparison of two policies needs. ``trained=False`` evaluates the policy
    as it was before training (the "untrained" baseline).
    """
    from rl4rec_core.evaluation import policy_eval

    ds, policy, users = _dataset_policy_users(dataset, checkpoint, split, max_users, seed, trained, device)
    metrics, ranks = policy_eval.evaluate_policy(ds, policy, split=split, service=service_client(service), users=users)
    metrics = dict(metrics)
    metrics["users"] = int(len(ranks))
    return {"metrics": metrics, "ranks": [int(r) for r in ranks.tolist()]}


@task(name="evaluate_baselines", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def evaluate_baselines(
    dataset: str, split: str, max_users: int | None, seed: int, baselines: tuple[str, ...],
    retrieval: RetrievalSettings,
) -> dict[str, dict]:
    """``{baseline: {"metrics": ..., "ranks": [U]}}`` on the same users as :func:`evaluate_policy` with the same
    arguments, as ``evaluate_policy`` returns them (``rank_baselines``)."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation.baselines import rank_baselines
    from rl4rec_core.evaluation.policy_eval import select_users

    ds = load_dataset(dataset)
    users = select_users(len(ds.split(split)), max_users, seed)
    done = rank_baselines(baselines, ds, split, users, retrieval)
    return {name: {"metrics": out["metrics"], "ranks": out["ranks"].tolist()} for name, out in done.items()}


@task(name="evaluate_fused_policy", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def evaluate_fused_policy(
    dataset: str,
    checkpoint: str,
    service: ServiceRef,
    split: str,
    max_users: int | None,
    seed: int,
    fusion: FusionSettings,
    trained: bool = True,
    device: str = "cpu",
    write_record: bool = False,
) -> dict[str, Any]:
    """The checkpoint's policy as a fused recommender (``evaluation.fused_eval``): ``{"fused": {"metrics", "ranks"},
    "text": {...}, "gamma", "validation"}``; gamma chosen on the validation users (``fusion.gamma_users``, a seeded
    subset), the split's users read once. ``write_record``: store the gamma as the dataset's fusion record."""
    from rl4rec_core.evaluation.fused_eval import evaluate_fused, gamma_users

    ds, policy, users = _dataset_policy_users(dataset, checkpoint, split, max_users, seed, trained, device)
    valid_users = gamma_users(ds, fusion, seed)
    out = evaluate_fused(ds, policy, service_client(service), fusion, split, users, valid_users,
                         write_record=write_record, text_source=f"{checkpoint} ({'trained' if trained else 'start'})")
    rows = {name: {"metrics": {**out[name][0], "users": int(len(out[name][1]))},
                   "ranks": [int(r) for r in out[name][1].tolist()]} for name in ("fused", "text")}
    return {**rows, "gamma": out["gamma"], "validation": out["validation"]}


def _dataset_policy_users(dataset: str, checkpoint: str, split: str, max_users: int | None, seed: int, trained: bool,
                          device: str):
    """The loaded dataset, the checkpoint's policy (trained or as it started) and the seeded rows of ``split``."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation import policy_eval

    ds = load_dataset(dataset)
    policy = policy_eval.load_policy(checkpoint, trained=trained, device=device)
    return ds, policy, policy_eval.select_users(len(ds.split(split)), max_users, seed)
