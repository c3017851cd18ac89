"""Scheduled retraining: train a challenger, compare it with the champion on the same validation users,
and promote it only when it is better by the rule in ``flows/promotion.py``. The decision is recorded
in the MLflow run (tags ``rl4rec.decision*``, metrics ``decision/*``)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.params import RECIPE, PipelineParams
from flows.promotion import decide_promotion
from flows.stages import mlflow_run, prepare_inputs, retrieval_service, train, tune_scorer, warm_start
from tasks import tracking as mt
from tasks import registry
from tasks.evaluation import evaluate_policy
from tasks.registry import fetch_model_checkpoint, promote_model, register_model
from tasks.runtime import ray_options, task_runner


@flow(name="rl4rec-retraining", task_runner=task_runner(), log_prints=True)
def retraining_flow(
    dataset: str = "ml-100k",
    use_dummy: bool = False,
    policy_model: str = "smollm2-135m-instruct",
    emb_model: str = "all-MiniLM-L6-v2",
    num_steps: int = RECIPE["num_steps"],
    batch_size: int = RECIPE["batch_size"],
    group_size: int = 4,
    algorithm: str = "grpo",
    reward: str = RECIPE["reward"],
    learning_rate: float | None = RECIPE["learning_rate"],
    kl_coef: float = RECIPE["kl_coef"],
    sft_steps: int = RECIPE["sft_steps"],
    init_from: str | None = None,
    history_len: int | None = RECIPE["history_len"],
    max_new_tokens: int | None = RECIPE["max_new_tokens"],
    temperature: float | None = RECIPE["temperature"],
    seed: int = 0,
    eval_users: int | None = 200,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    model_name: str = "rl4rec-{dataset}",
    experiment: str = "rl4rec",
    num_gpus: float = 0.0,
    actor_name: str = "RetrievalService",
) -> dict[str, Any]:
    """Returns the decision (``promote``, ``reason``, NDCG@10 of both, the bootstrap interval) and versions."""
    p = PipelineParams(
        dataset=dataset, use_dummy=use_dummy, policy_model=policy_model, emb_model=emb_model, num_steps=num_steps,
        batch_size=batch_size, group_size=group_size, algorithm=algorithm, reward=reward,
        learning_rate=learning_rate, kl_coef=kl_coef, seed=seed, eval_split="valid", eval_users=eval_users,
        model_name=model_name, experiment=experiment, num_gpus=num_gpus, actor_name=actor_name,
        sft_steps=sft_steps if init_from is None else 0, init_from=init_from, history_len=history_len,
        max_new_tokens=max_new_tokens, temperature=temperature,
    )
    if not 0 < confidence < 1:
        from rl4rec_core.errors import ConfigError

        raise ConfigError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence}")
    name = p.registered_name
    with mlflow_run(p, "rl4rec-retraining", {"confidence": confidence, "n_bootstrap": n_bootstrap}) as run_id:
        prepare_inputs(p)
        tune_scorer(p, run_id)
        start = warm_start(p, run_id)
        if start and not p.use_dummy:
            tune_scorer(p, run_id, checkpoint=start)
        champion_version = registry.champion_version(name)
        with ray_options(num_cpus=1):
            champion_ckpt = fetch_model_checkpoint.submit(name, registry.CHAMPION).result()
        common = dict(split="valid", max_users=p.eval_users, seed=p.seed, device=p.device)
        with retrieval_service(p) as ref:
            summary = train(p, ref, run_id, init_from=start)
            with ray_options(num_cpus=1, num_gpus=p.num_gpus):
                ch = evaluate_policy.submit(p.dataset, summary["final_checkpoint"], ref, **common)
                cp = evaluate_policy.submit(p.dataset, champion_ckpt, ref, **common) if champion_ckpt else None
                ch, cp = ch.result(), (cp.result() if cp else None)
        results = {"challenger": ch["metrics"], **({"champion": cp["metrics"]} if cp else {})}
        mt.log_evaluation(run_id, results, name="eval_valid")
        decision = decide_promotion(
            ch["ranks"], cp["ranks"] if cp else None, confidence=confidence, n_bootstrap=n_bootstrap, seed=p.seed
        )
        with ray_options(num_cpus=1):
            reg = register_model.submit(run_id, summary["final_checkpoint"], name).result()
            if decision.promote:
                promote_model.submit(name, reg["version"]).result()
        registry.record_decision(run_id, decision, reg["version"], champion_version)
    return {"mlflow_run_id": run_id, "model_name": name, "challenger_version": reg["version"],
            "champion_version_before": champion_version, **decision.to_dict()}
