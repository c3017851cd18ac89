"""Several datasets in one run (``--dataset_name a,b``): a MovieLens-titled dataset and an Amazon-layout one
prepared from raw files, one real retrieval service holding both, users drawn by weight, per-dataset logs,
exact resume, and the errors of a bad list."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.settings import Settings
from rl4rec_core.training.trainer import build_trainer
from tests.helpers.tiny_amazon import make_multi_service, prepare_tiny_amazon
from tests.helpers.tiny_recdata import WordVectorEncoder


@pytest.fixture
def beauty(rl4rec_dirs, tmp_path):
    return load_dataset(prepare_tiny_amazon(tmp_path))


@pytest.fixture
def both(tiny, beauty):
    """(name list, service holding both) for the tiny MovieLens set (36 users) and tiny-beauty (18 users)."""
    return f"{tiny.name},{beauty.name}", make_multi_service([tiny, beauty], WordVectorEncoder())


def settings(names, **kw):
    return Settings.of(**{"dataset_name": names, "num_steps": 8, "batch_size": 16, "group_size": 4,
                          "policy": "dummy", "save_every": 3, "log_every": 4, "reward": "ndcg@10",
                          "kl_coef": 0.0, **kw})


def _steps(trainer):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in trainer.log.read()]


def test_multi_run_logs_each_dataset(tiny, beauty, both, rl4rec_dirs):
    names, service = both
    trainer = build_trainer(settings(names), service, progress=False)  # dataset=None: loads both
    assert [ds.name for ds in trainer.datasets] == [tiny.name, beauty.name]
    trainer.train()
    out = rl4rec_dirs["ckpt"] / f"{tiny.name}+{beauty.name}_rl"  # the default folder: no comma in it
    records = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert len(records) == 8
    for r in records:
        users = {n: r[f"users/{n}"] for n in (tiny.name, beauty.name)}
        assert sum(users.values()) == 4
        present = [n for n, k in users.items() if k]
        assert all(f"reward/{n}" in r and f"rank/{n}" in r for n in present)
        # the step's mean is the samples' mean: each dataset weighted by its users
        mixed = sum(users[n] * r[f"reward/{n}"] for n in present) / 4
        assert r["avg_reward"] == pytest.approx(mixed, abs=1e-6)


def test_users_are_drawn_by_weight_from_their_own_dataset(tiny, beauty, both):
    names, service = both
    trainer = build_trainer(settings(names, dataset_weights="0.9,0.1"), service, [tiny, beauty], progress=False)
    n_tiny = int((trainer.user_dataset == 0).sum())
    drawn = [trainer.sample_users() for _ in range(300)]
    assert all(len(set(u.tolist())) == 4 for u in drawn)  # without replacement within a step
    share = np.mean([(u < n_tiny).mean() for u in drawn])
    assert share == pytest.approx(0.9, abs=0.03)  # 1200 draws: the standard error is about 0.009
    # each user's prompt shows titles of its own dataset
    u = next(u for step in drawn for u in step if u >= n_tiny)
    assert set(trainer.pool.history_titles([u])[0]) <= set(beauty.item_titles)
    # default weights: each dataset's share of the usable users (36 and 18 here)
    default = build_trainer(settings(names), service, [tiny, beauty], progress=False)
    assert default.pool.weights.tolist() == pytest.approx([2 / 3, 1 / 3])


class Recording:
    """The real service, with each compute_rewards call's dataset and size noted."""

    def __init__(self, service):
        self.service, self.calls = service, []

    def compute_rewards(self, texts, dataset_name, **kw):
        self.calls.append((dataset_name, len(texts)))
        return self.service.compute_rewards(texts, dataset_name, **kw)


def test_rewards_are_asked_per_dataset_and_put_back_in_order(tiny, beauty, both):
    names, service = both
    rec = Recording(service)
    trainer = build_trainer(settings(names, dataset_weights="1,1"), rec, [tiny, beauty], progress=False)
    users = np.array([0, 40, 1, 41])  # tiny, beauty, tiny, beauty (tiny has 36 pool users)
    texts = [t for u in users for t in (f"text {u} a", f"text {u} b", f"text {u} c", f"text {u} d")]
    rewards, ranks = trainer.compute_rewards(texts, users)
    assert rec.calls == [(tiny.name, 8), (beauty.name, 8)]
    for i, u in enumerate(users):  # each sample's reward is what its own dataset gives it alone
        name = names.split(",")[trainer.user_dataset[u]]
        one = service.compute_rewards(texts[4 * i:4 * i + 4], name, targets=[trainer.targets[u]] * 4,
                                      histories=[trainer.histories[u]] * 4, reward="ndcg@10",
                                      seed=0)
        assert rewards[4 * i:4 * i + 4].tolist() == pytest.approx(one.rewards.tolist())
        assert ranks[4 * i:4 * i + 4].tolist() == one.ranks.tolist()


def test_resume_of_a_multi_run_is_exact(tiny, beauty, both, tmp_path):
    names, service = both
    kw = {"dataset_weights": "0.6,0.4"}
    whole = build_trainer(settings(names, checkpoint_dir=str(tmp_path / "whole"), **kw), service, progress=False)
    whole.train()
    cut = settings(names, checkpoint_dir=str(tmp_path / "cut"), num_steps=5, **kw)
    build_trainer(cut, service, progress=False).train()
    resumed = build_trainer(settings(names, checkpoint_dir=str(tmp_path / "cut"), resume=True, **kw), service,
                            progress=False)
    assert resumed.train()["resumed_from"] == 5
    assert _steps(resumed) == _steps(whole)


@pytest.mark.parametrize("kw, match", [
    ({"dataset_name": "a,,b"}, "empty name"),
    ({"dataset_name": "a,b,a"}, "names a twice"),
    ({"dataset_name": "a,b", "dataset_weights": "0.5"}, "1 values for 2 datasets"),
    ({"dataset_name": "a", "dataset_weights": "1"}, "needs several datasets"),
    ({"dataset_name": "a,b", "dataset_weights": "1,-1"}, "positive"),
    ({"dataset_name": "a,b", "dataset_weights": "1,0"}, "rather than giving it weight 0"),
    ({"dataset_name": "a,b", "dataset_weights": "x,1"}, "comma-separated numbers"),
])
def test_bad_lists_are_refused_with_the_fix(kw, match):
    with pytest.raises(ConfigError, match=match):
        Settings.of(**kw)


def test_source_with_a_list_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--source prepares one dataset"):
        Settings.of(dataset_name="a,b", source=str(tmp_path))


def test_unknown_dataset_in_a_list_is_named(tiny, both):
    _, service = both
    with pytest.raises(MissingArtifactError, match=r"dataset 'nowhere' of the list .*rl4rec data prepare --dataset nowhere"):
        build_trainer(settings(f"{tiny.name},nowhere"), service, progress=False)


def test_service_lacking_one_dataset_is_named(tiny, beauty, tmp_path):
    service = make_multi_service([tiny], WordVectorEncoder())
    trainer = build_trainer(settings(f"{tiny.name},{beauty.name}", checkpoint_dir=str(tmp_path / "r")), service,
                            progress=False)
    with pytest.raises(ConfigError, match=rf"does not hold dataset '{beauty.name}'.*--datasets {tiny.name} {beauty.name}"):
        trainer.train()


def test_dummy_vocabulary_and_item_noun_span_the_datasets(tiny, beauty, both):
    from rl4rec_core.policy.prompts import item_noun_for

    names, service = both
    vocab = set(build_trainer(settings(names), service, [tiny, beauty], progress=False).policy.vocab)
    assert {"horror", "western"} <= vocab and {"lip", "shampoo"} & vocab
    assert item_noun_for("ml-100k,beauty") == "item" and item_noun_for("beauty,toys") == "product"
