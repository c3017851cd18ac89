"""Who owns a retrieval actor (issue 14, part 4), on a real local Ray: a taken name is refused with the
running actor's id, datasets and starter, and removal by owner id never touches another actor."""

from __future__ import annotations

import os
import uuid

import pytest
import ray

from rl4rec_core.retrieval import RetrievalClient, launch_retrieval_actor, remove_retrieval_actor
from rl4rec_core.settings import RetrievalSettings
from rl4rec_core.retrieval.actor import ActorNameTaken
from rl4rec_core.retrieval.owner import actor_id, actor_record
from tests.helpers.embeddings import data_dirs, random_items, write_embeddings


@pytest.fixture(scope="module")
def owned(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("owner")
    with data_dirs(root):
        write_embeddings("toy-a", random_items(30, seed=1))
        write_embeddings("toy-b", random_items(20, seed=2))
        name = f"Owned-{uuid.uuid4().hex[:6]}"
        actor = launch_retrieval_actor(RetrievalSettings(actor_name=name, emb_backend="sentence-transformers"),
                                       ["toy-a", "toy-b"])
        yield name, actor
        ray.kill(actor, no_restart=True)


def test_a_taken_name_is_refused_naming_the_running_actor(owned):
    # before: "already runs ... use it, stop it first" without its datasets, its starter or how to stop it
    name, actor = owned
    with pytest.raises(ActorNameTaken) as e:
        launch_retrieval_actor(RetrievalSettings(actor_name=name), ["toy-a"])
    msg = str(e.value)
    assert f"named {name!r} already runs in namespace 'rl4rec' (actor id {actor_id(actor)}, ALIVE" in msg
    assert "datasets: toy-a (30 items), toy-b (20 items)" in msg
    assert f"pid {os.getpid()} on " in msg and f"`kill -TERM {os.getpid()}`" in msg
    assert "pick another --actor_name" in msg


def test_removal_by_owner_id_leaves_another_actor_under_the_name(owned):
    # before: removal went by name only, whichever actor held it
    name, actor = owned
    assert remove_retrieval_actor(name, owned_id="0" * 32) is False
    assert RetrievalClient(actor, name=name).ping() == "ok"
    assert actor_record(actor_id(actor)).state == "ALIVE"


def test_the_record_of_an_unknown_actor_is_gone(ray_local):
    record = actor_record("ab" * 16)
    assert record.state == "GONE" and record.dead
