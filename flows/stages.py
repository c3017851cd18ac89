"""Pieces the flows share: the common head of every pipeline (data -> embeddings -> retrieval actor)
and the MLflow bookkeeping around a flow run. Plain functions called inside a flow; they only submit tasks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from flows.params import PipelineParams
from tasks import mlflow_tracking as mt
from tasks.data import generate_item_embeddings, prepare_dataset
from tasks.runtime import current_flow_run, ray_options
from tasks.service import ServiceRef, start_retrieval_service, stop_retrieval_service

log = logging.getLogger(__name__)


@contextlib.contextmanager
def mlflow_run(p: PipelineParams, flow_name: str, extra_params: dict[str, Any] | None = None) -> Iterator[str]:
    """The flow run's MLflow run: all parameters, tagged with the Prefect flow run and git commit;
    FAILED (with everything logged so far) when the flow body raises."""
    mt.configure_mlflow()
    fid, fname = current_flow_run()
    params = {**p.to_dict(), **(extra_params or {})}
    with mt.tracked_run(
        run_name=f"{flow_name}-{fname}" if fname else flow_name,
        params=params,
        tags={"rl4rec.dataset": p.dataset, "rl4rec.policy": "dummy" if p.use_dummy else p.policy_model},
        experiment=p.experiment,
        flow_run_id=fid,
        flow_name=flow_name,
    ) as run_id:
        yield run_id


def prepare_inputs(p: PipelineParams) -> str:
    """Prepared dataset + item embeddings (both reused when up to date); the embedding file path."""
    with ray_options(num_cpus=1):
        prepared = prepare_dataset.submit(p.dataset, p.source, p.fmt)
        emb = generate_item_embeddings.submit(p.dataset, p.emb_model, p.emb_type, wait_for=[prepared])
    return emb.result()


@contextlib.contextmanager
def retrieval_service(p: PipelineParams) -> Iterator[ServiceRef]:
    """The retrieval actor for as long as the ``with`` body needs it; removed after unless it was
    already running (an ``rl4rec serve`` actor is used and left alone)."""
    with ray_options(num_cpus=0.1):
        ref = start_retrieval_service.submit(
            p.dataset, p.emb_model, p.emb_type, name=p.actor_name, num_gpus=p.num_gpus
        ).result()
    try:
        yield ref
    finally:
        try:
            stop_retrieval_service(ref)
        except Exception:
            log.exception("could not remove retrieval actor %s", ref.get("name"))
