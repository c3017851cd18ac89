"""The rl4rec flows: the whole pipeline, and its parts on their own (embeddings, training, evaluation).

Each flow runs its tasks on Ray (``LazyRayTaskRunner``: Ray starts at the first task, so bad
parameters fail before it) and records one MLflow run tagged with its Prefect flow run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.fused_stages import prepare_base
from flows.params import FlowParams
from flows.stages import (
    evaluate,
    mlflow_run,
    prepare_inputs,
    record_inputs,
    retrieval_service,
    train,
    tune_scorer,
    warm_start,
)
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
    apply_profile,
)
from tasks import registry
from tasks import tracking as mt
from tasks.registry import promote_model, register_model
from tasks.runtime import current_flow_run, ray_options, task_runner


@flow(name="rl4rec-pipeline", task_runner=task_runner(), log_prints=True)
def pipeline_flow(
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
    profile: str | None = None,
) -> dict[str, Any]:
    """Data -> embeddings -> tuned hybrid retrieval -> SFT -> retrieval actor -> GRPO -> evaluation -> registry.

    ``profile`` (``rl4rec_core.settings.PROFILES``: ``recipe``, what ``rl4rec run`` and the ``pipeline`` deployment
    pass, ``quick``, ``text``) sets the fields the groups leave at their default; None: the settings' defaults.

    The recipe (docs/recipe.md): the hybrid scorer is tuned on validation (prior weight and recent
    items with the echo+prior query, then the text/history fusion on the SFT policy's texts), the
    policy is warm-started by SFT, and GRPO starts from it with the KL anchored there. The trained
    policy is registered as ``model_name`` with alias ``challenger`` (and ``champion`` per ``promote``),
    with the retrieval settings it was trained and evaluated with.
    """
    groups = dict(run=run, retrieval=retrieval, policy=policy, algorithm=algorithm, trainer=trainer, fusion=fusion,
                  recipe=recipe,
                  evaluation=evaluation, tracking=tracking, resources=resources, sasrec=sasrec)
    p = FlowParams.of(**apply_profile(groups, profile)).check_inputs()
    with mlflow_run(p, "rl4rec-pipeline") as run_id:
        emb_path = prepare_inputs(p)
        record_inputs(p, run_id, ("train", "valid", p.evaluation.eval_split))
        tuned = tune_scorer(p, run_id)
        prepare_base(p, run_id)  # the base recommender (SASRec) before SFT's examples and the candidates need it
        start = warm_start(p, run_id)
        # fuse the starting policy's texts with the recent items (the text-only design; a base fuses them itself)
        if start and p.policy.policy != "dummy" and p.fusion.base == "none":
            tuned = tune_scorer(p, run_id, checkpoint=start) or tuned
        with retrieval_service(p) as ref:
            summary = train(p, ref, run_id, init_from=start)
            evaluation = evaluate(p, ref, summary["final_checkpoint"], run_id, start=start)
        promoted = registry.wants_promotion(p.registered_name, p.tracking.promote)
        scorer = tuned["scorer"] if tuned else "cosine"
        with ray_options(num_cpus=1):
            reg = register_model.submit(run_id, summary["final_checkpoint"], p.registered_name,
                                        log_transformers=p.tracking.log_transformers,
                                        retrieval_settings=tuned["path"] if tuned else None,
                                        evaluation=evaluation["results"], eval_split=p.evaluation.eval_split,
                                        dataset=None if p.multi else p.dataset).result()
            if promoted:
                promote_model.submit(p.registered_name, reg["version"]).result()
        registry.record_registration(run_id, p.registered_name, reg["version"], promoted)
    return {
        "mlflow_run_id": run_id, "model_name": p.registered_name, "version": reg["version"],
        "promoted": promoted, "checkpoint": summary["final_checkpoint"], "embeddings": emb_path,
        "start": start, "scorer": scorer,
        "train": {k: v for k, v in summary.items() if k != "last"}, "last_step": summary.get("last", {}),
        "evaluation": evaluation["results"], "intervals": evaluation["intervals"], "flow_run_id": current_flow_run()[0],
    }


@flow(name="rl4rec-embeddings", task_runner=task_runner(), log_prints=True)
def embedding_flow(
    run: RunSettings = RunSettings(), retrieval: RetrievalSettings = RetrievalSettings(),
    tracking: TrackingSettings = TrackingSettings(),
) -> str:
    """Prepare the dataset and (re)generate its item embeddings when their inputs changed; the file path."""
    p = FlowParams.of(run=run, retrieval=retrieval, tracking=tracking).check_inputs()
    with mlflow_run(p, "rl4rec-embeddings") as run_id:
        path = prepare_inputs(p)
        for one in [path] if isinstance(path, str) else path:  # one file per dataset of a list
            mt.record_embeddings(run_id, one)
    return path


@flow(name="rl4rec-training", task_runner=task_runner(), log_prints=True)
def training_flow(
    run: RunSettings = RunSettings(),
    retrieval: RetrievalSettings = RetrievalSettings(),
    policy: PolicySettings = PolicySettings(),
    algorithm: AlgorithmSettings = AlgorithmSettings(),
    trainer: TrainerSettings = TrainerSettings(),
    fusion: FusionSettings = FusionSettings(),
    tracking: TrackingSettings = TrackingSettings(),
    resources: ResourceSettings = ResourceSettings(),
    register_policy: bool = True,
) -> dict[str, Any]:
    """Train and (optionally) register as ``challenger``; no evaluation."""
    # no SFT here: the policy starts from policy.init_from or the base model
    p = FlowParams.of(run=run, retrieval=retrieval, policy=policy, algorithm=algorithm, trainer=trainer, fusion=fusion,
                      recipe=RecipeSettings(tune_retrieval=False, sft_steps=0),
                      evaluation=EvaluationSettings(baselines=[]),  # it evaluates nothing
                      tracking=tracking, resources=resources).check_inputs()
    with mlflow_run(p, "rl4rec-training") as run_id:
        prepare_inputs(p)
        record_inputs(p, run_id, ("train",))
        with retrieval_service(p) as ref:
            # the final checkpoint goes to MLflow once: as the registered model, or else as a run artifact
            summary = train(p, ref, run_id, log_checkpoints="none" if register_policy else "final")
        reg = None
        if register_policy:
            with ray_options(num_cpus=1):
                reg = register_model.submit(run_id, summary["final_checkpoint"], p.registered_name,
                                            log_transformers=p.tracking.log_transformers).result()
    return {"mlflow_run_id": run_id, "checkpoint": summary["final_checkpoint"], "registered": reg}


@flow(name="rl4rec-evaluation", task_runner=task_runner(), log_prints=True)
def evaluation_flow(
    run: RunSettings = RunSettings(),
    retrieval: RetrievalSettings = RetrievalSettings(),
    evaluation: EvaluationSettings = EvaluationSettings(),
    tracking: TrackingSettings = TrackingSettings(),
    resources: ResourceSettings = ResourceSettings(),
    checkpoint: str | None = None,
    alias: str = "champion",
) -> dict[str, dict]:
    """Evaluate a checkpoint (or the registered version behind ``alias``) beside the baselines."""
    from tasks.registry import fetch_model_checkpoint

    p = FlowParams.of(run=run, retrieval=retrieval, evaluation=evaluation, tracking=tracking,
                      resources=resources).check_inputs()
    with mlflow_run(p, "rl4rec-evaluation", {"checkpoint": checkpoint, "alias": alias}) as run_id:
        if checkpoint is None:
            with ray_options(num_cpus=1):
                checkpoint = fetch_model_checkpoint.submit(p.registered_name, alias).result()
            if checkpoint is None:
                from rl4rec_core.errors import MissingArtifactError

                raise MissingArtifactError(
                    f"no version of {p.registered_name!r} has alias {alias!r}; pass checkpoint=... or run the pipeline first"
                )
        prepare_inputs(p)
        record_inputs(p, run_id, (p.evaluation.eval_split,))
        with retrieval_service(p) as ref:
            return evaluate(p, ref, checkpoint, run_id)["results"]
