"""SASRec's network and training: window building, masking, learning a sequential pattern, no leakage of
validation or test targets, determinism, the settings' checks.

Everything trains a tiny model on the tiny datasets of tests/helpers/tiny_recdata.py (24 items) in about a
second per fit, never on ML-100k.
"""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.evaluation.baselines import PopularityBaseline, Scorer
from rl4rec_core.evaluation.ranking import evaluate_scores
from rl4rec_core.recommenders.sasrec_model import SASRecScorer, pad_left, training_windows
from rl4rec_core.recommenders.sasrec_training import train_sasrec, validate
from rl4rec_core.recommenders.store import data_digest
from rl4rec_core.settings import SASRecSettings
from tests.helpers.sasrec_data import FAST, cyclic, with_sequences


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread (conftest's ``one_thread``): a tiny model is fastest so on a shared box."""


def _fit(ds, settings: SASRecSettings = FAST) -> SASRecScorer:
    t = train_sasrec(ds.train_histories(), ds.num_items, settings, valid=ds.split("valid"))
    return SASRecScorer(t.model, settings, {"best_epoch": t.best_epoch, "valid_ndcg10": t.valid_ndcg10})


def _same_weights(a: SASRecScorer, b: SASRecScorer) -> bool:
    wa, wb = a.model.state_dict(), b.model.state_dict()
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
    b = _fit(tiny)
    assert isinstance(b, Scorer) and b.name == "sasrec" and b.num_items == tiny.num_items
    hist = tiny.split("test").histories[:5]
    scores = b.score(hist + [[]])
    assert scores.shape == (6, tiny.num_items) and scores.dtype == torch.float32 and not scores.requires_grad
    assert torch.isfinite(scores).all()
    assert torch.equal(scores[-1], torch.zeros(tiny.num_items))  # empty history: every item ties
    # left padding must not change a user's scores: alone or beside a longer history, same row
    torch.testing.assert_close(b.score([hist[0][:2]])[0], b.score([hist[0][:2], hist[0]])[0])
    assert not b.model.training


def test_batched_validation_is_the_evaluation_of_the_split(tiny):
    """The early-stopping figure is what `rl4rec evaluate` would report for the same model on validation."""
    b = _fit(tiny)
    valid = tiny.split("valid")
    got = validate(b, valid.histories, valid.targets)
    want = evaluate_scores(b, valid, ks=(10,))
    assert got["ndcg@10"] == pytest.approx(want["ndcg@10"]) and got["hit@10"] == pytest.approx(want["hit@10"])
    assert b.record()["valid_ndcg10"] == pytest.approx(want["ndcg@10"])  # the kept epoch is the best one


def test_learns_a_sequential_pattern(rl4rec_dirs):
    ds = cyclic(rl4rec_dirs["data"])
    t = train_sasrec(ds.train_histories(), ds.num_items, SASRecSettings(**{**FAST.__dict__, "sasrec_max_epochs": 30,
                                                                          "sasrec_patience": 30}),
                     valid=ds.split("valid"))
    test = ds.split("test")
    got = evaluate_scores(SASRecScorer(t.model, FAST), test, ks=(1,))
    pop = evaluate_scores(PopularityBaseline.from_dataset(ds), test, ks=(1,))
    # chance of hit@1 is ~1/16 (24 items less ~8 masked history items); the pattern is deterministic
    assert got["hit@1"] > 0.8, got
    assert got["hit@1"] > pop["hit@1"] + 0.5
    assert t.valid_ndcg10 > 0.8 and 1 <= t.best_epoch <= t.epochs <= 30


def test_test_targets_change_neither_the_weights_nor_the_validation_candidates(rl4rec_dirs):
    """The leakage test of issue 20: the last item of every user (the test target) moved, the model and the
    top-10 candidates it gives the validation histories stay exactly the same."""
    seqs = [list(s) for s in cyclic(rl4rec_dirs["data"]).sequences["items"]]
    changed = [s[:-1] + [(s[-1] + 12) % 24] for s in seqs]  # every test target moved; not in any history
    da, db = (with_sequences(rl4rec_dirs["data"], name, s) for name, s in (("a", seqs), ("b", changed)))
    assert da.split("test").targets.tolist() != db.split("test").targets.tolist()
    a, b = _fit(da), _fit(db)
    assert _same_weights(a, b) and a.record()["best_epoch"] == b.record()["best_epoch"]
    valid_a, valid_b = da.split("valid").histories, db.split("valid").histories
    assert valid_a == valid_b
    assert torch.equal(a.score(valid_a).topk(10).indices, b.score(valid_b).topk(10).indices)
    assert data_digest(da) == data_digest(db)  # so a stored model stays current when only test targets move


def test_validation_targets_never_reach_the_training_examples(rl4rec_dirs):
    seqs = [list(s) for s in cyclic(rl4rec_dirs["data"]).sequences["items"]]
    changed = [s[:-2] + [(s[-2] + 12) % 24, s[-1]] for s in seqs]
    a, b = (with_sequences(rl4rec_dirs["data"], n, s) for n, s in (("a", seqs), ("b", changed)))
    assert a.split("valid").targets.tolist() != b.split("valid").targets.tolist()
    for x, y in zip(training_windows(a.train_histories(), 8), training_windows(b.train_histories(), 8)):
        assert torch.equal(x, y)
    # so without early stopping (which is what validation is for) the weights are identical too
    wa = train_sasrec(a.train_histories(), a.num_items, FAST).model.state_dict()
    wb = train_sasrec(b.train_histories(), b.num_items, FAST).model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # but they choose the epoch, so they are part of the data digest
    assert data_digest(a) != data_digest(b)


def test_deterministic_for_a_seed(tiny):
    s = SASRecSettings(**{**FAST.__dict__, "sasrec_dropout": 0.2})
    a = _fit(tiny, s)
    torch.manual_seed(123)  # the caller's global RNG state must not matter
    b = _fit(tiny, s)
    c = _fit(tiny, SASRecSettings(**{**s.__dict__, "sasrec_seed": 1}))
    assert _same_weights(a, b) and a.record()["valid_ndcg10"] == b.record()["valid_ndcg10"]
    assert not _same_weights(a, c)


@pytest.mark.parametrize("bad", [
    {"sasrec_max_len": 0}, {"sasrec_hidden": -1}, {"sasrec_layers": 0}, {"sasrec_hidden": 10, "sasrec_heads": 3},
    {"sasrec_dropout": 1.0}, {"sasrec_dropout": -0.1}, {"sasrec_learning_rate": 0.0},
    {"sasrec_learning_rate": float("nan")}, {"sasrec_batch_size": 0}, {"sasrec_max_epochs": 0},
    {"sasrec_patience": 0}, {"sasrec_weight_decay": -1.0}, {"sasrec_hidden": 64.0}, {"sasrec_seed": "0"},
    {"sasrec_dropout": "0.2"},
])
def test_bad_settings_are_one_line_errors_naming_the_flag(bad):
    with pytest.raises(ConfigError) as e:
        SASRecSettings(**bad)
    assert "\n" not in str(e.value) and "--sasrec_" in str(e.value)
