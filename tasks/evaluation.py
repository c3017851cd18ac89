"""Evaluation tasks: a policy (trained or as it started) and the baselines, on the same users."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from rl4rec_core.settings import DEFAULT_EMB_MODEL
from tasks.service import ServiceRef, service_client


def _subset(split, rows):
    from rl4rec_core.data import Split

    return Split(split.name, split.user_idx[rows], [split.histories[i] for i in rows], split.targets[rows])


# evaluation only reads; repeating it after a lost worker is harmless
@task(name="evaluate_policy", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def evaluate_policy(
    dataset: str,
    checkpoint: str,
    service: ServiceRef,
    split: str = "valid",
    max_users: int | None = None,
    seed: int = 0,
    trained: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """``{"metrics": {hit@k, ndcg@k, mrr, users}, "ranks": [U] 1-based}`` of the checkpoint's policy.

    The users are ``select_users(len(split), max_users, seed)``: the same seed gives the same users,
    which is what the paired comparison of two policies needs. ``trained=False`` evaluates the policy
    as it was before training (the "untrained" baseline).
    """
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation import policy_eval

    ds = load_dataset(dataset)
    policy = policy_eval.load_policy(checkpoint, trained=trained, device=device)
    metrics, ranks = policy_eval.evaluate_policy(
        ds, policy, split=split, service=service_client(service), max_users=max_users, seed=seed
    )
    metrics = dict(metrics)
    metrics["users"] = int(len(ranks))
    return {"metrics": metrics, "ranks": [int(r) for r in ranks.tolist()]}


@task(name="evaluate_baselines", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def evaluate_baselines(
    dataset: str,
    split: str = "valid",
    max_users: int | None = None,
    seed: int = 0,
    baselines: tuple[str, ...] = ("popularity", "echo"),
    emb_model: str = DEFAULT_EMB_MODEL,
    emb_type: str = "item",
    with_ranks: bool = False,
) -> dict[str, dict]:
    """``{baseline: metrics}`` on the same users as :func:`evaluate_policy` with the same arguments;
    with ``with_ranks``, ``{baseline: {"metrics": ..., "ranks": [U]}}`` as ``evaluate_policy`` returns."""
    from rl4rec_core.data import load_dataset
    from rl4rec_core.evaluation.baselines import baseline_scorer, make_baseline
    from rl4rec_core.metrics import summarize
    from rl4rec_core.evaluation.policy_eval import select_users
    from rl4rec_core.evaluation.ranking import split_ranks

    ds = load_dataset(dataset)
    sp = ds.split(split)
    rows = select_users(len(sp), max_users, seed)
    sub = _subset(sp, rows) if len(rows) < len(sp) else sp
    out = {}
    for name in baselines:
        scorer = make_baseline(name, ds, emb_model, emb_type)
        ranks = split_ranks(scorer, sub)
        metrics = {**summarize(ranks), "users": int(len(ranks)), "scorer": baseline_scorer(scorer)}
        out[name] = {"metrics": metrics, "ranks": ranks.tolist()} if with_ranks else metrics
    return out
