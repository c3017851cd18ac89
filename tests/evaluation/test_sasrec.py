"""SASRec baseline: window building, masking, learning a sequential pattern, no leakage, determinism, cache.

Everything trains a tiny model on the tiny datasets of tests/helpers/tiny_recdata.py (24 items) in well under a
second per fit, never on ML-100k.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.evaluation.baselines import PopularityBaseline, Scorer
from rl4rec_core.evaluation.ranking import evaluate_scores
from rl4rec_core.evaluation.sasrec import (
    SASRecBaseline,
    SASRecConfig,
    cache_key,
    pad_left,
    train_sasrec,
    training_windows,
)
from tests.helpers.tiny_recdata import write_tiny_dataset

# small and quick; dropout off so the cyclic pattern is learnt in few epochs
FAST = dict(max_len=8, hidden=16, num_layers=1, dropout=0.0, learning_rate=1e-2, batch_size=32,
            max_epochs=8, patience=8)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread (conftest's ``one_thread``): a tiny model is fastest so on a shared box."""


def _with_sequences(data_dir, name: str, seqs: list[list[int]]):
    """The tiny dataset's 24 items with our own user sequences, loaded."""
    write_tiny_dataset(data_dir, name)
    df = pd.DataFrame({"user_idx": range(len(seqs)), "user_id": [f"u{u}" for u in range(len(seqs))], "items": seqs})
    df.to_parquet(data_dir / name / "sequences.parquet", index=False)
    return load_dataset(name)


def _cyclic(data_dir, users: int = 60, seed: int = 0):
    """Users walk through the 24 items in order from a random start: the next item is always ``last + 1``."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, 24, (users,), generator=g).tolist()
    lengths = torch.randint(6, 11, (users,), generator=g).tolist()
    return _with_sequences(data_dir, "cyclic", [[(s + j) % 24 for j in range(n)] for s, n in zip(starts, lengths)])


def _weights(b: SASRecBaseline) -> dict[str, torch.Tensor]:
    return b.model.state_dict()


def _same_weights(a: SASRecBaseline, b: SASRecBaseline) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_windows_hand_worked():
    # history [5, 6, 7, 8]: inputs 5,6,7 predict 6,7,8; max_len 2 cuts from the end -> [6,7]->[7,8], [5]->[6]
    # tokens are item + 1 and 0 pads on the left; padded targets are -100 (ignored by the loss)
    inputs, targets = training_windows([[5, 6, 7, 8], [3]], max_len=2)
    assert inputs.tolist() == [[7, 8], [0, 6]]
    assert targets.tolist() == [[7, 8], [-100, 6]]
    assert pad_left([[1, 2, 3], []], 2).tolist() == [[3, 4], [0, 0]]
    with pytest.raises(DataError, match="Fix"):
        training_windows([[1], []], max_len=4)


def test_score_shape_finite_and_padding_invariant(tiny):
    b = SASRecBaseline.from_dataset(tiny, SASRecConfig(**FAST), cache=False)
    assert isinstance(b, Scorer) and b.name == "sasrec" and b.num_items == tiny.num_items
    hist = tiny.split("test").histories[:5]
    scores = b.score(hist + [[]])
    assert scores.shape == (6, tiny.num_items) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[-1], torch.zeros(tiny.num_items))  # empty history: every item ties
    # left padding must not change a user's scores: alone or beside a longer history, same row
    torch.testing.assert_close(b.score([hist[0][:2]])[0], b.score([hist[0][:2], hist[0]])[0])
    assert not b.model.training and 1 <= b.best_epoch <= FAST["max_epochs"] and b.train_seconds > 0


def test_learns_a_sequential_pattern(rl4rec_dirs):
    ds = _cyclic(rl4rec_dirs["data"])
    b = SASRecBaseline.from_dataset(ds, SASRecConfig(**{**FAST, "max_epochs": 30, "patience": 30}), cache=False)
    test = ds.split("test")
    got = evaluate_scores(b, test, ks=(1,))
    pop = evaluate_scores(PopularityBaseline.from_dataset(ds), test, ks=(1,))
    # chance of hit@1 is ~1/16 (24 items less ~8 masked history items); the pattern is deterministic
    assert got["hit@1"] > 0.8, got
    assert got["hit@1"] > pop["hit@1"] + 0.5
    assert b.valid_ndcg10 > 0.8


def test_test_targets_never_change_the_weights(rl4rec_dirs):
    seqs = [list(s) for s in _cyclic(rl4rec_dirs["data"]).sequences["items"]]
    changed = [s[:-1] + [(s[-1] + 12) % 24] for s in seqs]  # every test target moved; not in any history
    a, b = (SASRecBaseline.from_dataset(_with_sequences(rl4rec_dirs["data"], name, s), SASRecConfig(**FAST),
                                        cache=False) for name, s in (("a", seqs), ("b", changed)))
    assert _same_weights(a, b) and a.best_epoch == b.best_epoch


def test_validation_targets_never_reach_the_training_examples(rl4rec_dirs):
    seqs = [list(s) for s in _cyclic(rl4rec_dirs["data"]).sequences["items"]]
    changed = [s[:-2] + [(s[-2] + 12) % 24, s[-1]] for s in seqs]
    a, b = (_with_sequences(rl4rec_dirs["data"], n, s) for n, s in (("a", seqs), ("b", changed)))
    assert a.split("valid").targets.tolist() != b.split("valid").targets.tolist()
    for x, y in zip(training_windows(a.train_histories(), 8), training_windows(b.train_histories(), 8)):
        assert torch.equal(x, y)
    # so without early stopping (which is what validation is for) the weights are identical too
    cfg = SASRecConfig(**FAST)
    wa = train_sasrec(a.train_histories(), a.num_items, cfg)[0].state_dict()
    wb = train_sasrec(b.train_histories(), b.num_items, cfg)[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # but they choose the epoch, so they are part of the cache key
    assert cache_key(a, cfg) != cache_key(b, cfg)


def test_deterministic_for_a_seed(tiny):
    cfg = SASRecConfig(**{**FAST, "dropout": 0.2})
    a = SASRecBaseline.from_dataset(tiny, cfg, cache=False)
    torch.manual_seed(123)  # the caller's global RNG state must not matter
    b = SASRecBaseline.from_dataset(tiny, cfg, cache=False)
    c = SASRecBaseline.from_dataset(tiny, SASRecConfig(**{**FAST, "dropout": 0.2, "seed": 1}), cache=False)
    assert _same_weights(a, b) and a.valid_ndcg10 == b.valid_ndcg10
    assert not _same_weights(a, c)


def test_cache_is_reused(tiny, rl4rec_dirs, monkeypatch):
    cfg = SASRecConfig(**FAST)
    first = SASRecBaseline.from_dataset(tiny, cfg)
    files = list(rl4rec_dirs["emb"].glob("tiny-ml_sasrec_*.pt"))
    assert [f.name for f in files] == [f"tiny-ml_sasrec_{cache_key(tiny, cfg)}.pt"]
    assert not first.from_cache

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must be loaded, not retrained")

    monkeypatch.setattr("rl4rec_core.evaluation.sasrec.train_sasrec", no_training)
    second = SASRecBaseline.from_dataset(tiny, cfg)
    assert second.from_cache and _same_weights(first, second)
    def stats(b):
        return b.best_epoch, b.valid_ndcg10, b.train_seconds

    assert stats(second) == stats(first)
    hist = tiny.split("test").histories
    assert torch.equal(first.score(hist), second.score(hist))
    with pytest.raises(AssertionError, match="cached"):  # another config is another model
        SASRecBaseline.from_dataset(tiny, SASRecConfig(**{**FAST, "seed": 7}))


@pytest.mark.parametrize("bad", [
    {"max_len": 0}, {"hidden": -1}, {"num_layers": 0}, {"hidden": 10, "num_heads": 3}, {"dropout": 1.0},
    {"dropout": -0.1}, {"learning_rate": 0.0}, {"learning_rate": float("nan")}, {"batch_size": 0},
    {"max_epochs": 0}, {"patience": 0}, {"eval_every": 0}, {"weight_decay": -1.0}, {"hidden": 64.0},
    {"seed": "0"}, {"dropout": "0.2"},
])
def test_bad_config_is_rejected(bad):
    with pytest.raises(ConfigError, match="Fix"):
        SASRecConfig(**bad)
