"""The rl4rec flows: the whole pipeline, and its parts on their own (embeddings, training, evaluation).

Each flow runs its tasks on Ray (``LazyRayTaskRunner``: Ray starts at the first task, so bad
parameters fail before it) and records one MLflow run tagged with its Prefect flow run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.params import PipelineParams
from flows.stages import mlflow_run, prepare_inputs, retrieval_service
from tasks import mlflow_tracking as mt
from tasks import registry
from tasks.evaluation import evaluate_baselines, evaluate_policy
from tasks.models import promote_model, register_model
from tasks.runtime import current_flow_run, ray_options, task_runner
from tasks.training import train_policy


def _train(p: PipelineParams, ref, run_id: str) -> dict[str, Any]:
    _, fname = current_flow_run()
    cfg = p.train_config(p.output_dir(fname))
    with ray_options(num_cpus=1, num_gpus=p.num_gpus):
        return train_policy.submit(cfg.to_dict(), ref, run_id, device=p.device).result()


def _evaluate(p: PipelineParams, ref, checkpoint: str, run_id: str, with_baselines: bool = True) -> dict[str, dict]:
    """Policy (trained, and optionally untrained) and baselines on the same users; logged to MLflow."""
    common = dict(split=p.eval_split, max_users=p.eval_users, seed=p.seed)
    with ray_options(num_cpus=1, num_gpus=p.num_gpus):
        futures = {"policy": evaluate_policy.submit(p.dataset, checkpoint, ref, device=p.device, **common)}
        if p.evaluate_untrained:
            futures["untrained"] = evaluate_policy.submit(
                p.dataset, checkpoint, ref, trained=False, device=p.device, **common
            )
    with ray_options(num_cpus=1):
        base = evaluate_baselines.submit(p.dataset, baselines=tuple(p.baselines), emb_model=p.emb_model,
                                         emb_type=p.emb_type, **common) if with_baselines and p.baselines else None
    results = {name: f.result()["metrics"] for name, f in futures.items()}
    if base is not None:
        results.update(base.result())
    mt.log_evaluation(run_id, results, name=f"eval_{p.eval_split}")
    return results


@flow(name="rl4rec-pipeline", task_runner=task_runner(), log_prints=True)
def pipeline_flow(
    dataset: str = "ml-100k",
    source: str | None = None,
    use_dummy: bool = False,
    policy_model: str = "smollm2-135m-instruct",
    emb_model: str = "all-MiniLM-L6-v2",
    emb_type: str = "item",
    num_steps: int = 100,
    batch_size: int = 16,
    group_size: int = 4,
    algorithm: str = "grpo",
    reward: str = "ndcg@10",
    learning_rate: float | None = None,
    kl_coef: float = 0.0,
    num_negatives: int = 0,
    save_every: int = 50,
    seed: int = 0,
    checkpoint_dir: str | None = None,
    eval_split: str = "test",
    eval_users: int | None = 200,
    baselines: list[str] = ["popularity", "echo"],  # noqa: B006 (Prefect shows it as the default)
    evaluate_untrained: bool = True,
    model_name: str = "rl4rec-{dataset}",
    experiment: str = "rl4rec",
    promote: str = "first",
    num_gpus: float = 0.0,
    actor_name: str = "RetrievalService",
) -> dict[str, Any]:
    """Data -> item embeddings -> retrieval actor -> RL training -> evaluation vs. baselines -> registry.

    The trained policy is registered as ``model_name`` with alias ``challenger``; with
    ``promote="first"`` it also becomes ``champion`` when there is none yet ("always"/"never" as said).
    Returns the MLflow run id, registered version, checkpoint and the evaluation table.
    """
    p = PipelineParams(**{k: v for k, v in locals().items()})
    with mlflow_run(p, "rl4rec-pipeline") as run_id:
        emb_path = prepare_inputs(p)
        with retrieval_service(p) as ref:
            summary = _train(p, ref, run_id)
            results = _evaluate(p, ref, summary["final_checkpoint"], run_id)
        champion = registry.alias_version(p.registered_name, registry.CHAMPION)
        promoted = p.promote == "always" or (p.promote == "first" and champion is None)
        with ray_options(num_cpus=1):
            reg = register_model.submit(run_id, summary["final_checkpoint"], p.registered_name).result()
            if promoted:
                promote_model.submit(p.registered_name, reg["version"]).result()
        mt.set_tags(run_id, {"rl4rec.registered_model": p.registered_name,
                             "rl4rec.registered_version": reg["version"], "rl4rec.promoted": promoted})
    return {
        "mlflow_run_id": run_id, "model_name": p.registered_name, "version": reg["version"],
        "promoted": promoted, "checkpoint": summary["final_checkpoint"], "embeddings": emb_path,
        "train": {k: v for k, v in summary.items() if k != "last"}, "last_step": summary.get("last", {}),
        "evaluation": results, "flow_run_id": current_flow_run()[0],
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
        mt.log_artifact(run_id, path.replace(".pt", ".json"), "embeddings")
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
            summary = _train(p, ref, run_id)
        reg = None
        if register_policy:
            with ray_options(num_cpus=1):
                reg = register_model.submit(run_id, summary["final_checkpoint"], p.registered_name).result()
    return {"mlflow_run_id": run_id, "checkpoint": summary["final_checkpoint"], "registered": reg}


@flow(name="rl4rec-evaluation", task_runner=task_runner(), log_prints=True)
def evaluation_flow(
    dataset: str = "ml-100k", checkpoint: str | None = None, model_name: str = "rl4rec-{dataset}",
    alias: str = "champion", emb_model: str = "all-MiniLM-L6-v2", split: str = "test", eval_users: int | None = 200,
    baselines: list[str] = ["popularity", "echo"],  # noqa: B006
    seed: int = 0, experiment: str = "rl4rec", actor_name: str = "RetrievalService",
) -> dict[str, dict]:
    """Evaluate a checkpoint (or the registered version behind ``alias``) beside the baselines."""
    from tasks.models import fetch_model_checkpoint

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
            return _evaluate(p, ref, checkpoint, run_id)
