"""Scheduled retraining: train a challenger, compare it with the champion on the same validation users,
and promote it only when it is better by the rule in ``flows/promotion.py``. The decision is recorded
in the MLflow run (tags ``rl4rec.decision*``, metrics ``decision/*``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow

from flows import artifacts
from flows.params import FlowParams
from flows.promotion import decide_promotion
from flows.stages import mlflow_run, prepare_inputs, record_inputs, retrieval_service, train, tune_scorer, warm_start
from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import (
    AlgorithmSettings,
    EvaluationSettings,
    FusionSettings,
    PolicySettings,
    RecipeSettings,
    ResourceSettings,
    RetrievalSettings,
    RunSettings,
    SASRecSettings,
    TrackingSettings,
    TrainerSettings,
)
from tasks import registry
from tasks import tracking as mt
from tasks.ab import log_ab_report
from tasks.evaluation import evaluate_policy
from tasks.registry import fetch_model_checkpoint, promote_model, register_model
from tasks.runtime import ray_options, task_runner


@flow(name="rl4rec-retraining", task_runner=task_runner(), log_prints=True)
def retraining_flow(
    run: RunSettings = RunSettings(),
    retrieval: RetrievalSettings = RetrievalSettings(),
    policy: PolicySettings = PolicySettings(),
    algorithm: AlgorithmSettings = AlgorithmSettings(),
    trainer: TrainerSettings = TrainerSettings(),
    fusion: FusionSettings = FusionSettings(),
    recipe: RecipeSettings = RecipeSettings(),
    evaluation: EvaluationSettings = EvaluationSettings(),
    tracking: TrackingSettings = TrackingSettings(),
    resources: ResourceSettings = ResourceSettings(),
    sasrec: SASRecSettings = SASRecSettings(),
) -> dict[str, Any]:
    """Returns the decision (``promote``, ``reason``, NDCG@10 of both, the bootstrap interval) and versions.

    It takes the pipeline's groups, with two fixed by what retraining is: the comparison runs on
    ``valid`` users (``evaluation.eval_users`` of them; the test split stays unseen), and the rule in
    ``flows/promotion.py`` with ``evaluation.confidence`` decides the champion, not ``tracking.promote``.
    """
    # the decision is taken on validation users, so the test split stays unseen
    evaluation = dataclasses.replace(evaluation, eval_split="valid")
    p = FlowParams.of(run=run, retrieval=retrieval, policy=policy, algorithm=algorithm, trainer=trainer, fusion=fusion,
                      recipe=recipe, evaluation=evaluation, tracking=tracking, resources=resources, sasrec=sasrec)
    if p.multi:  # the champion/challenger comparison is on one dataset's validation users
        raise ConfigError(f"the retraining flow compares challenger and champion on one dataset, got {p.dataset!r}; "
                          "run it per dataset, or train the mixture with the pipeline and compare with `rl4rec ab`")
    p.check_inputs()
    name, e = p.registered_name, p.evaluation
    with mlflow_run(p, "rl4rec-retraining") as run_id:
        prepare_inputs(p)
        record_inputs(p, run_id, ("train", "valid"))
        tune_scorer(p, run_id)
        start = warm_start(p, run_id)
        if start and p.policy.policy != "dummy":
            tune_scorer(p, run_id, checkpoint=start)
        champion_version = registry.champion_version(name)
        with ray_options(num_cpus=1):
            champion_ckpt = fetch_model_checkpoint.submit(name, registry.CHAMPION).result()
        with retrieval_service(p) as ref:
            summary = train(p, ref, run_id, init_from=start)
            ch, cp = _challenger_and_champion(p, ref, summary["final_checkpoint"], champion_ckpt)
        decision = decide_promotion(ch["ranks"], cp["ranks"] if cp else None, confidence=e.confidence,
                                    n_bootstrap=e.n_bootstrap, seed=p.run.seed)
        _record(p, run_id, ch, cp)
        with ray_options(num_cpus=1):
            reg = register_model.submit(run_id, summary["final_checkpoint"], name,
                                        log_transformers=p.tracking.log_transformers,
                                        evaluation={"policy": ch["metrics"]}, eval_split="valid",
                                        dataset=p.dataset).result()
            if decision.promote:
                promote_model.submit(name, reg["version"]).result()
        registry.record_decision(run_id, decision, reg["version"], champion_version)
    return {"mlflow_run_id": run_id, "model_name": name, "challenger_version": reg["version"],
            "champion_version_before": champion_version, **decision.to_dict()}


def _challenger_and_champion(p: FlowParams, ref, challenger: str, champion: str | None) -> tuple[dict, dict | None]:
    """Both policies' ``{"metrics", "ranks"}`` on the same validation users (the champion's None without one)."""
    common = dict(split="valid", max_users=p.evaluation.eval_users, seed=p.run.seed, device=p.device)
    with ray_options(num_cpus=1, num_gpus=p.resources.num_gpus):
        ch = evaluate_policy.submit(p.dataset, challenger, ref, **common)
        cp = evaluate_policy.submit(p.dataset, champion, ref, **common) if champion else None
        return ch.result(), (cp.result() if cp else None)


def _record(p: FlowParams, run_id: str, ch: dict, cp: dict | None) -> None:
    """The comparison in the flow's MLflow run and Prefect artifacts, with the A/B report when there is a champion."""
    e = p.evaluation
    results = {"challenger": ch["metrics"], **({"champion": cp["metrics"]} if cp else {})}
    mt.log_evaluation(run_id, results, name="eval_valid")
    artifacts.evaluation_table(results, "valid")
    if cp:
        log_ab_report(run_id, p.dataset, ch["ranks"], cp["ranks"], max_users=e.eval_users, seed=p.run.seed,
                      confidence=e.confidence, n_bootstrap=e.n_bootstrap)
