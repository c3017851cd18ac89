"""The stages of the fused recipe (``fusion.base`` set; docs/recipe.md): train the base recommender, and judge
each policy as the fused recommender it serves as, beside the base alone. Plain functions called inside a flow."""

from __future__ import annotations

import logging
from typing import Any

from flows.params import FlowParams
from tasks.caching import cached
from tasks.evaluation import evaluate_baselines, evaluate_fused_policy
from tasks.runtime import ray_options, training_cpus

log = logging.getLogger(__name__)


def prepare_base(p: FlowParams, run_id: str) -> dict[str, Any] | None:
    """SASRec trained (Prefect-cached; early-stopped on validation) and logged, before anything reads it: SFT's
    examples, the prompts' candidates and the fused rewards all come from it. None for echo+prior (built from
    the embeddings and the tuned prior by the service) and for no base."""
    if p.fusion.base != "sasrec":
        return None
    from tasks.sasrec import log_sasrec, train_sasrec

    with ray_options(num_cpus=training_cpus(p.resources.train_cpus)):
        futures = {name: cached(train_sasrec).submit(name, p.sasrec, device=p.device) for name in p.run.datasets}
    records = {name: f.result() for name, f in futures.items()}
    for name, record in records.items():
        log_sasrec(run_id, record, dataset=name if p.multi else None)
    return records


def evaluate_fused_on(p: FlowParams, dataset: str, ref, checkpoint: str, with_baselines: bool,
                      start: str | None) -> tuple[dict[str, dict], list[dict], dict[str, Any]]:
    """``({row: metrics}, paired intervals, {row: gamma})`` of one dataset, every row on the same users.

    Rows: ``policy`` / ``untrained`` (its start: SFT after SFT) / ``base`` (the LLM before SFT, when there was a
    start), each fused with the base at the gamma chosen on its own validation texts, and each as ``<row> text``
    (its text alone through the retriever: the seed's channel); the baselines, with the base recommender alone.
    The trained policy's gamma is written as the dataset's fusion record: what the service and the model serve.
    """
    from rl4rec_core.evaluation.bootstrap import paired_intervals

    e = p.evaluation
    common = dict(split=e.eval_split, max_users=e.eval_users, seed=p.run.seed, fusion=p.fusion, device=p.device)
    with ray_options(num_cpus=1, num_gpus=p.resources.num_gpus):
        futures = {"policy": evaluate_fused_policy.submit(dataset, checkpoint, ref, write_record=True, **common)}
        if e.evaluate_untrained:
            futures["untrained"] = evaluate_fused_policy.submit(dataset, checkpoint, ref, trained=False, **common)
            if start:
                futures["base"] = evaluate_fused_policy.submit(dataset, start, ref, trained=False, **common)
    names = tuple(dict.fromkeys([*e.baselines, *(["sasrec"] if p.fusion.base == "sasrec" else [])]))
    with ray_options(num_cpus=1):
        baselines = evaluate_baselines.submit(dataset, baselines=names, retrieval=p.retrieval, split=e.eval_split,
                                              max_users=e.eval_users, seed=p.run.seed) if with_baselines else None
    done: dict[str, dict] = {}
    gammas: dict[str, Any] = {}
    for name, future in futures.items():
        out = future.result()
        done[name], done[f"{name} text"], gammas[name] = out["fused"], out["text"], out["gamma"]
    if baselines is not None:
        done.update(baselines.result())
    results = {name: out["metrics"] for name, out in done.items()}
    ranks = {name: out["ranks"] for name, out in done.items()}
    # the proof (issue 20): the fused policy against the base alone and against its own start; the text channel
    # before and after RL; every LLM row against echo+prior and popularity
    base_row = "sasrec" if p.fusion.base == "sasrec" else "echo+prior"
    starts = {"policy": "untrained", "untrained": "base", "policy text": "untrained text", "untrained text": "base text"}
    pairs = [(a, b) for a in ("policy", "untrained", "base", "policy text", "untrained text") if a in ranks
             for b in dict.fromkeys((starts.get(a), base_row, "echo+prior", "popularity")) if b in ranks]
    return results, paired_intervals(ranks, pairs, n=e.n_bootstrap, seed=p.run.seed, confidence=e.confidence), gammas
