"""The flows' retrieval-service tasks own their actor by id (issue 14, part 4), on a real local Ray."""

from __future__ import annotations

import uuid

import ray

from rl4rec_core.retrieval import RetrievalClient, find_retrieval_actor, launch_retrieval_actor
from rl4rec_core.retrieval.owner import actor_id
from rl4rec_core.settings import RetrievalSettings
from tasks.service import start_retrieval_service, stop_retrieval_service
from tests.helpers.embeddings import random_items, write_embeddings


def test_a_flow_removes_only_the_actor_it_created(ray_local, rl4rec_dirs):
    write_embeddings("toy-f", random_items(20, seed=4))
    name = f"FlowOwned-{uuid.uuid4().hex[:6]}"
    retrieval = RetrievalSettings(actor_name=name, emb_backend="sentence-transformers")
    start = start_retrieval_service.fn  # the task's body, without a Prefect run
    ref = start(["toy-f"], retrieval, num_gpus=0)
    mine = find_retrieval_actor(name, "rl4rec")
    assert ref["created"] and ref["actor_id"] == actor_id(mine)

    # the flow's actor dies for good and a server started by someone else takes the name
    ray.kill(mine, no_restart=True)
    other = launch_retrieval_actor(retrieval, ["toy-f"], detached=True)
    try:
        # before: the flow removed whatever held the name, the other server's actor
        assert stop_retrieval_service(ref) is False
        assert RetrievalClient(other, name=name).ping() == "ok"

        # a flow that attaches to the running actor does not own it, and leaves it at its end
        attached = start(["toy-f"], retrieval, num_gpus=0)
        assert not attached["created"] and attached["actor_id"] == actor_id(other)
        assert stop_retrieval_service(attached) is False
        assert find_retrieval_actor(name, "rl4rec") is not None
    finally:
        ray.kill(other, no_restart=True)


def test_a_flow_removes_the_actor_it_created(ray_local, rl4rec_dirs):
    write_embeddings("toy-f", random_items(20, seed=4))
    name = f"FlowOwned-{uuid.uuid4().hex[:6]}"
    retrieval = RetrievalSettings(actor_name=name, emb_backend="sentence-transformers")
    ref = start_retrieval_service.fn(["toy-f"], retrieval, num_gpus=0)
    assert ref["created"]
    assert stop_retrieval_service(ref) is True
    assert find_retrieval_actor(name, "rl4rec") is None
