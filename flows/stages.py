"""Pieces the flows share: the common head of every pipeline (data -> embeddings -> retrieval actor)
and the MLflow bookkeeping around a flow run. Plain functions called inside a flow; they only submit tasks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from flows import artifacts
from flows.params import FlowParams
from tasks import tracking as mt
from tasks.caching import cached
from tasks.data import generate_item_embeddings, prepare_dataset
from tasks.evaluation import evaluate_baselines, evaluate_policy
from tasks.recipe import fine_tune_policy, log_tuning, tune_retrieval_settings
from tasks.runtime import current_flow_run, ray_options, training_cpus
from tasks.service import ServiceRef, start_retrieval_service, stop_retrieval_service
from tasks.stopping import ray_goes_down_with_the_flow
from tasks.training import train_policy

log = logging.getLogger(__name__)


@contextlib.contextmanager
def mlflow_run(p: FlowParams, flow_name: str, extra_params: dict[str, Any] | None = None) -> Iterator[str]:
    """The flow run's MLflow run: every setting as one tree (dotted names such as ``policy.temperature``;
    ``algorithm.learning_rate`` the rate that applies, the policy's default when it was left unset),
    tagged with the Prefect flow run, Source, user and git commit; FAILED (with everything logged so far)
    when the flow body raises. ``settings.json`` keeps the tree as it was given."""
    mt.configure_mlflow()
    fid, fname = current_flow_run()
    params = {**mt.flatten(p.to_dict()), "algorithm.learning_rate": p.settings.learning_rate, **(extra_params or {})}
    dummy = p.policy.policy == "dummy"
    with mt.tracked_run(
        run_name=f"{flow_name}-{fname}" if fname else flow_name,
        params=params,
        tags={"rl4rec.dataset": p.dataset, "rl4rec.policy": "dummy" if dummy else p.policy.policy_model},
        experiment=p.tracking.experiment,
        flow_run_id=fid,
        flow_name=flow_name,
    ) as run_id:
        mt.log_dict(run_id, p.to_dict(), "settings.json")  # the tree as it was given, beside the dotted params
        artifacts.link_mlflow_run(run_id, flow_name)
        yield run_id


def record_inputs(p: FlowParams, run_id: str, splits: tuple[str, ...]) -> None:
    """The splits the flow reads, as MLflow datasets (name, digest, source) of its run (``tasks/lineage.py``);
    after :func:`prepare_inputs`, which writes them."""
    from tasks import lineage

    lineage.log_datasets(run_id, p.run.datasets, splits)


def prepare_inputs(p: FlowParams) -> str | list[str]:
    """Prepared dataset + item embeddings (both Prefect-cached: state "Cached" when their inputs and
    outputs are unchanged, see tasks/caching.py); the embedding file path, one per dataset of a list."""
    futures = []
    with ray_options(num_cpus=1):
        for name in p.run.datasets:  # source= only with one dataset (RunSettings refuses it with a list)
            prepared = cached(prepare_dataset).submit(name, p.run.source, p.run.fmt, encoding=p.run.encoding)
            futures.append(cached(generate_item_embeddings).submit(
                name, p.retrieval.emb_model_name, p.retrieval.emb_type, backend=p.retrieval.emb_backend,
                wait_for=[prepared]))
    paths = [f.result() for f in futures]
    return paths if p.multi else paths[0]


@contextlib.contextmanager
def retrieval_service(p: FlowParams) -> Iterator[ServiceRef]:
    """The retrieval actor for as long as the ``with`` body needs it; removed after unless it was
    already running (an ``rl4rec serve`` actor is used and left alone)."""
    with ray_options(num_cpus=0.1):
        ref = start_retrieval_service.submit(p.run.datasets, p.retrieval, num_gpus=p.resources.num_gpus,
                                             fusion=p.fusion).result()
    stopped_from_outside = False
    try:
        yield ref
    except BaseException as e:
        stopped_from_outside = not isinstance(e, Exception)  # a cancellation, a SIGTERM, Ctrl-C
        raise
    finally:
        if stopped_from_outside and ray_goes_down_with_the_flow():
            # the actor ends with the flow's own Ray instance; a cancellation has already sent SIGTERM to that
            # instance's GCS, and asking it to remove the actor could wait a minute (tasks/stopping.py)
            log.info("retrieval actor %s ends with the flow's Ray instance", ref.get("name"))
        else:
            try:
                stop_retrieval_service(ref)
            except Exception:
                log.exception("could not remove retrieval actor %s", ref.get("name"))


def tune_scorer(p: FlowParams, run_id: str, checkpoint: str | None = None) -> dict[str, Any] | None:
    """Tune the hybrid scorer on validation (``alpha`` on ``checkpoint``'s texts; Prefect-cached) and log
    it to the flow's MLflow run; None when switched off. A run on several datasets tunes each (the service
    reads each one's settings) and registers none with the model: ``path`` is None, ``by_dataset`` has them."""
    if not p.recipe.tune_retrieval:
        return None
    with ray_options(num_cpus=1):
        futures = {name: cached(tune_retrieval_settings).submit(name, p.retrieval, checkpoint=checkpoint, device=p.device)
                   for name in p.run.datasets}
    outs = {name: f.result() for name, f in futures.items()}
    for name, out in outs.items():
        log_tuning(run_id, out, with_policy=checkpoint is not None, dataset=name if p.multi else None)
    if not p.multi:
        return outs[p.dataset]
    return {"scorer": ", ".join(f"{n}: {o['scorer']}" for n, o in outs.items()), "path": None, "by_dataset": outs}


def warm_start(p: FlowParams, run_id: str) -> str | None:
    """The starting checkpoint of RL: SFT's (when ``sft_steps``), ``init_from``, or None (the base model)."""
    if not p.runs_sft:
        if p.multi and p.recipe.sft_steps and p.policy.policy != "dummy":
            log.warning("no SFT warm start: a run on several datasets (%s) starts RL from %s; SFT one of them "
                        "with `rl4rec sft` and pass init_from to warm-start", p.dataset,
                        p.policy.init_from or "the base model")
        return p.policy.init_from
    _, fname = current_flow_run()
    out = p.run_dir(fname) + "_sft"
    with ray_options(num_cpus=training_cpus(p.resources.train_cpus), num_gpus=p.resources.num_gpus):
        summary = fine_tune_policy.submit(p.sft_config(out).to_dict(), run_id).result()
    return summary["final_checkpoint"]


def train(p: FlowParams, ref, run_id: str, init_from: str | None = None, log_checkpoints: str = "none") -> dict[str, Any]:
    """RL training; ``log_checkpoints="none"`` by default: the flow registers the final checkpoint as a model,
    which is where MLflow keeps it (once, not also as a run artifact)."""
    _, fname = current_flow_run()
    settings = p.training_settings(p.run_dir(fname), init_from=init_from)
    if p.trainer.num_workers:  # the task waits for its Ray Train workers, which take the CPUs and GPUs
        with ray_options(num_cpus=0):
            return train_policy.submit(settings.to_dict(), ref, run_id, log_checkpoints).result()
    with ray_options(num_cpus=training_cpus(p.resources.train_cpus), num_gpus=p.resources.num_gpus):
        return train_policy.submit(settings.to_dict(), ref, run_id, log_checkpoints).result()


def evaluate(
    p: FlowParams, ref, checkpoint: str, run_id: str, with_baselines: bool = True, start: str | None = None,
) -> dict[str, dict]:
    """Policy, its starting point ("untrained": SFT after SFT), the base LLM when there was a
    ``start``, and the baselines, on the same users; logged to MLflow with paired intervals.

    A run on several datasets is evaluated on each: rows and pairs are named ``<dataset>/<model>``
    (metrics ``eval_test/beauty/policy/ndcg_at_10``, a ``dataset`` column in the table artifact)."""
    e = p.evaluation
    if not p.multi:
        results, intervals = _evaluate_on(p, p.dataset, ref, checkpoint, with_baselines, start)
    else:
        results, intervals = {}, []
        for name in p.run.datasets:
            r, iv = _evaluate_on(p, name, ref, checkpoint, with_baselines, start)
            results.update({f"{name}/{model}": m for model, m in r.items()})
            intervals += [{**row, "a": f"{name}/{row['a']}", "b": f"{name}/{row['b']}"} for row in iv]
    mt.record_evaluation(run_id, results, intervals, split=e.eval_split)
    artifacts.evaluation_table(results, e.eval_split, intervals)
    return {"results": results, "intervals": intervals}


def _evaluate_on(p: FlowParams, dataset: str, ref, checkpoint: str, with_baselines: bool,
                 start: str | None) -> tuple[dict[str, dict], list[dict]]:
    """``({model: metrics}, paired intervals)`` of one dataset, every row on the same users."""
    from rl4rec_core.evaluation.bootstrap import paired_intervals

    if p.fusion.base != "none":  # each policy as the fused recommender it serves as, beside the base alone
        from flows.fused_stages import evaluate_fused_on

        return evaluate_fused_on(p, dataset, ref, checkpoint, with_baselines, start)[:2]
    e = p.evaluation
    common = dict(split=e.eval_split, max_users=e.eval_users, seed=p.run.seed)
    with ray_options(num_cpus=1, num_gpus=p.resources.num_gpus):
        futures = {"policy": evaluate_policy.submit(dataset, checkpoint, ref, device=p.device, **common)}
        if e.evaluate_untrained:
            futures["untrained"] = evaluate_policy.submit(
                dataset, checkpoint, ref, trained=False, device=p.device, **common
            )
            if start:
                futures["base"] = evaluate_policy.submit(dataset, start, ref, trained=False, device=p.device, **common)
    with ray_options(num_cpus=1):
        base = evaluate_baselines.submit(dataset, baselines=tuple(e.baselines), retrieval=p.retrieval,
                                         **common) if with_baselines and e.baselines else None
    done = {name: f.result() for name, f in futures.items()}
    if base is not None:
        done.update(base.result())
    results = {name: out["metrics"] for name, out in done.items()}
    ranks = {name: out["ranks"] for name, out in done.items()}
    # each LLM row against the strongest same-retriever baseline, popularity, and its own starting point
    starts = {"policy": "untrained", "untrained": "base"}
    pairs = [(a, b) for a in ("policy", "untrained", "base") if a in ranks
             for b in (starts.get(a), "echo+prior", "popularity") if b in ranks]
    return results, paired_intervals(ranks, pairs, n=e.n_bootstrap, seed=p.run.seed, confidence=e.confidence)
