"""The rl4rec flows: the whole pipeline, and its parts on their own (embeddings, training, evaluation).

Each flow runs its tasks on Ray (``LazyRayTaskRunner``: Ray starts at the first task, so bad
parameters fail before it) and records one MLflow run tagged with its Prefect flow run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.params import DEFAULT_BASELINES, RECIPE, PipelineParams
from flows.stages import evaluate, mlflow_run, prepare_inputs, retrieval_service, train, tune_scorer, warm_start
from tasks import tracking as mt
from tasks import registry
from tasks.registry import promote_model, register_model
from tasks.runtime import current_flow_run, ray_options, task_runner


@flow(name="rl4rec-pipeline", task_runner=task_runner(), log_prints=True)
def pipeline_flow(
    dataset: str = "ml-100k",
    source: str | None = None,
    use_dummy: bool = False,
    policy_model: str = "smollm2-135m-instruct",
    emb_model: str = "all-MiniLM-L6-v2",
    emb_type: str = "item",
    num_steps: int = RECIPE["num_steps"],
    batch_size: int = RECIPE["batch_size"],
    group_size: int = 4,
    algorithm: str = "grpo",
    reward: str = RECIPE["reward"],
    learning_rate: float | None = RECIPE["learning_rate"],
    kl_coef: float = RECIPE["kl_coef"],
    num_negatives: int = 0,
    save_every: int = 50,
    seed: int = 0,
    checkpoint_dir: str | None = None,
    eval_split: str = "test",
    eval_users: int | None = 200,
    baselines: list[str] = list(DEFAULT_BASELINES),  # noqa: B006 (Prefect shows it as the default)
    evaluate_untrained: bool = True,
    model_name: str = "rl4rec-{dataset}",
    experiment: str = "rl4rec",
    promote: str = "first",
    num_gpus: float = 0.0,
    actor_name: str = "RetrievalService",
    tune_retrieval: bool = True,
    sft_steps: int = RECIPE["sft_steps"],
    sft_batch_size: int = RECIPE["sft_batch_size"],
    sft_learning_rate: float = RECIPE["sft_learning_rate"],
    init_from: str | None = None,
    history_len: int | None = RECIPE["history_len"],
    max_new_tokens: int | None = RECIPE["max_new_tokens"],
    temperature: float | None = RECIPE["temperature"],
    train_cpus: float | None = None,
) -> dict[str, Any]:
    """Data -> embeddings -> tuned hybrid retrieval -> SFT -> retrieval actor -> GRPO -> evaluation -> registry.

    The recipe (docs/recipe.md): the hybrid scorer is tuned on validation (prior weight and recent
    items with the echo+prior query, then the text/history fusion on the SFT policy's texts), the
    policy is warm-started by SFT, and GRPO starts from it with the KL anchored there. The trained
    policy is registered as ``model_name`` with alias ``challenger`` (and ``champion`` per ``promote``),
    with the retrieval settings it was trained and evaluated with.
    """
    p = PipelineParams(**{k: v for k, v in locals().items()})
    with mlflow_run(p, "rl4rec-pipeline") as run_id:
        emb_path = prepare_inputs(p)
        tuned = tune_scorer(p, run_id)
        start = warm_start(p, run_id)
        if start and not p.use_dummy:  # fuse the starting policy's texts with the recent items
            tuned = tune_scorer(p, run_id, checkpoint=start) or tuned
        with retrieval_service(p) as ref:
            summary = train(p, ref, run_id, init_from=start)
            evaluation = evaluate(p, ref, summary["final_checkpoint"], run_id, start=start)
        promoted = registry.wants_promotion(p.registered_name, p.promote)
        scorer = tuned["scorer"] if tuned else "cosine"
        with ray_options(num_cpus=1):
            reg = register_model.submit(run_id, summary["final_checkpoint"], p.registered_name,
                                        retrieval_settings=tuned["path"] if tuned else None).result()
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
    dataset: str = "ml-100k", source: str | None = None, emb_model: str = "all-MiniLM-L6-v2", emb_type: str = "item",
    experiment: str = "rl4rec",
) -> str:
    """Prepare the dataset and (re)generate its item embeddings when their inputs changed; the file path."""
    p = PipelineParams(dataset=dataset, source=source, emb_model=emb_model, emb_type=emb_type, experiment=experiment)
    with mlflow_run(p, "rl4rec-embeddings") as run_id:
        path = prepare_inputs(p)
        mt.record_embeddings(run_id, path)
    return path


@flow(name="rl4rec-training", task_runner=task_runner(), log_prints=True)
def training_flow(
    dataset: str = "ml-100k", use_dummy: bool = False, policy_model: str = "smollm2-135m-instruct",
    emb_model: str = "all-MiniLM-L6-v2", num_steps: int = 100, batch_size: int = 16, group_size: int = 4,
    algorithm: str = "grpo", reward: str = "ndcg@10", learning_rate: float | None = None, kl_coef: float = 0.0,
    seed: int = 0, checkpoint_dir: str | None = None, model_name: str = "rl4rec-{dataset}",
    experiment: str = "rl4rec", register_policy: bool = True, num_gpus: float = 0.0,
    actor_name: str = "RetrievalService",
) -> dict[str, Any]:
    """Train and (optionally) register as ``challenger``; no evaluation."""
    p = PipelineParams(
        dataset=dataset, use_dummy=use_dummy, policy_model=policy_model, emb_model=emb_model, num_steps=num_steps,
        batch_size=batch_size, group_size=group_size, algorithm=algorithm, reward=reward,
        learning_rate=learning_rate, kl_coef=kl_coef, seed=seed, checkpoint_dir=checkpoint_dir,
        model_name=model_name, experiment=experiment, num_gpus=num_gpus, actor_name=actor_name,
    )
    with mlflow_run(p, "rl4rec-training") as run_id:
        prepare_inputs(p)
        with retrieval_service(p) as ref:
            summary = train(p, ref, run_id)
        reg = None
        if register_policy:
            with ray_options(num_cpus=1):
                reg = register_model.submit(run_id, summary["final_checkpoint"], p.registered_name).result()
    return {"mlflow_run_id": run_id, "checkpoint": summary["final_checkpoint"], "registered": reg}


@flow(name="rl4rec-evaluation", task_runner=task_runner(), log_prints=True)
def evaluation_flow(
    dataset: str = "ml-100k", checkpoint: str | None = None, model_name: str = "rl4rec-{dataset}",
    alias: str = "champion", emb_model: str = "all-MiniLM-L6-v2", split: str = "test", eval_users: int | None = 200,
    baselines: list[str] = list(DEFAULT_BASELINES),  # noqa: B006
    seed: int = 0, experiment: str = "rl4rec", actor_name: str = "RetrievalService",
) -> dict[str, dict]:
    """Evaluate a checkpoint (or the registered version behind ``alias``) beside the baselines."""
    from tasks.registry import fetch_model_checkpoint

    p = PipelineParams(dataset=dataset, emb_model=emb_model, eval_split=split, eval_users=eval_users,
                       baselines=baselines, seed=seed, model_name=model_name, experiment=experiment,
                       actor_name=actor_name)
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
        with retrieval_service(p) as ref:
            return evaluate(p, ref, checkpoint, run_id)["results"]
