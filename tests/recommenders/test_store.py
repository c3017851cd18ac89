"""The stored SASRec: one file per dataset, loaded back to the same scores with weights_only loads, refused
when missing, stale or damaged (one-line errors naming the command), retrained by ensure_sasrec when stale."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.recommenders import ensure_sasrec, load_base
from rl4rec_core.recommenders import store
from rl4rec_core.recommenders.sasrec_model import SASRecScorer
from tests.helpers.sasrec_data import FAST, with_sequences


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread (conftest's ``one_thread``)."""


def test_train_save_load_gives_the_same_scores_and_the_record(tiny, rl4rec_dirs):
    record = ensure_sasrec(tiny, FAST)
    assert not record["reused"] and record["name"] == "sasrec" and record["dataset"] == "tiny-ml"
    assert record["path"] == str(rl4rec_dirs["emb"] / "tiny-ml_sasrec.pt")
    assert (rl4rec_dirs["emb"] / "tiny-ml_sasrec.json").is_file()
    assert record["settings"] == dataclasses.asdict(FAST) and record["data_digest"] == store.data_digest(tiny)
    assert 1 <= record["best_epoch"] <= record["epochs"] <= FAST.sasrec_max_epochs
    assert 0 <= record["valid_ndcg10"] <= record["valid_hit10"] <= 1 and record["train_seconds"] > 0

    scorer = load_base("sasrec", tiny)
    assert isinstance(scorer, SASRecScorer) and scorer.num_items == tiny.num_items and not scorer.model.training
    got = scorer.record()
    assert {k: got[k] for k in ("name", "path", "data_digest", "valid_ndcg10", "best_epoch")} == {
        k: record[k] for k in ("name", "path", "data_digest", "valid_ndcg10", "best_epoch")}
    # the scores the training run validated with: the stored model's validation figure is reproduced
    from rl4rec_core.recommenders.sasrec_training import validate

    valid = tiny.split("valid")
    assert validate(scorer, valid.histories, valid.targets)["ndcg@10"] == pytest.approx(record["valid_ndcg10"])
    hist = tiny.split("test").histories
    assert torch.equal(scorer.score(hist), load_base("sasrec", tiny).score(hist))  # loads are identical

    again = ensure_sasrec(tiny, FAST)  # up to date: reused, not retrained
    assert again["reused"] and again["weights_sha256"] == record["weights_sha256"]
    assert again["created"] == record["created"]


def test_the_weights_file_holds_tensors_only_and_loads_with_weights_only(tiny):
    record = ensure_sasrec(tiny, FAST)
    state = torch.load(record["path"], weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert state["item.weight"].shape == (tiny.num_items + 1, FAST.sasrec_hidden)


def test_a_file_with_python_objects_is_refused_not_run(tiny, rl4rec_dirs):
    record = ensure_sasrec(tiny, FAST)
    state = torch.load(record["path"], weights_only=True)
    torch.save({**state, "extra": argparse.Namespace(x=1)}, record["path"])
    # the record's sha256 no longer matches: refused before torch reads it
    with pytest.raises(DataError, match="sha256") as e:
        load_base("sasrec", tiny)
    assert "\n" not in str(e.value) and "rl4rec sasrec --dataset_name tiny-ml" in str(e.value)
    # and with a record that describes it (someone rewrote both), weights_only refuses the object
    path = rl4rec_dirs["emb"] / "tiny-ml_sasrec.json"
    path.write_text(json.dumps({**record, "weights_sha256": store.sha256_file(record["path"])}))
    with pytest.raises(DataError, match="Python objects") as e:
        load_base("sasrec", tiny)
    assert "rl4rec sasrec --dataset_name tiny-ml --overwrite" in str(e.value)


def test_a_missing_checkpoint_is_one_line_naming_the_command(tiny, rl4rec_dirs):
    with pytest.raises(ConfigError) as e:
        load_base("sasrec", tiny)
    msg = str(e.value)
    assert "\n" not in msg and str(rl4rec_dirs["emb"] / "tiny-ml_sasrec.pt") in msg
    assert "`rl4rec sasrec --dataset_name tiny-ml`" in msg
    with pytest.raises(ConfigError, match="unknown trained base recommender 'bert4rec'"):
        load_base("bert4rec", tiny)


def test_weights_for_another_catalogue_are_refused(tiny, rl4rec_dirs):
    record = ensure_sasrec(tiny, FAST)
    path = rl4rec_dirs["emb"] / "tiny-ml_sasrec.json"
    path.write_text(json.dumps({**record, "num_items": 99}))
    with pytest.raises(ConfigError, match="scores 99 items, and 'tiny-ml' has 24"):
        load_base("sasrec", tiny)


def test_a_stale_model_is_refused_by_load_and_retrained_by_ensure(tiny, rl4rec_dirs):
    first = ensure_sasrec(tiny, FAST)
    # the data changed: one user's validation target (the second-last item) is another item
    seqs = [list(s) for s in tiny.sequences["items"]]
    seqs[0][-2] = next(i for i in range(tiny.num_items) if i not in seqs[0])
    changed = with_sequences(rl4rec_dirs["data"], "tiny-ml", seqs)
    with pytest.raises(ConfigError) as e:
        load_base("sasrec", changed)
    assert "\n" not in str(e.value) and "other data" in str(e.value)
    assert "`rl4rec sasrec --dataset_name tiny-ml --sasrec_max_len 8" in str(e.value) or "--overwrite" in str(e.value)
    second = ensure_sasrec(changed, FAST)
    assert not second["reused"] and second["data_digest"] != first["data_digest"]
    assert load_base("sasrec", changed).record()["data_digest"] == second["data_digest"]


def test_other_settings_are_refused_when_asked_for_and_retrained_by_ensure(tiny):
    ensure_sasrec(tiny, FAST)
    other = dataclasses.replace(FAST, sasrec_seed=3)
    with pytest.raises(ConfigError, match="sasrec_seed differ") as e:
        load_base("sasrec", tiny, settings=other)
    assert "--sasrec_seed 3" in str(e.value)
    assert load_base("sasrec", tiny).record()["settings"]["sasrec_seed"] == 0  # without settings: what is stored
    record = ensure_sasrec(tiny, other)
    assert not record["reused"] and load_base("sasrec", tiny, settings=other).record()["settings"]["sasrec_seed"] == 3
    assert ensure_sasrec(tiny, other, overwrite=True)["reused"] is False


def test_the_sasrec_baseline_uses_the_stored_model(tiny):
    from rl4rec_core.evaluation.baselines import make_baseline
    from rl4rec_core.settings import RetrievalSettings

    record = ensure_sasrec(tiny, FAST)
    scorer = make_baseline("sasrec", tiny, RetrievalSettings())
    # the stored model, trained with FAST (not the default settings): loaded, not retrained
    assert scorer.record()["weights_sha256"] == record["weights_sha256"]
    assert scorer.settings == FAST


def test_ensure_retrains_over_a_damaged_or_half_written_pair(tiny, rl4rec_dirs):
    first = ensure_sasrec(tiny, FAST)
    (rl4rec_dirs["emb"] / "tiny-ml_sasrec.json").unlink()  # the weights without their record
    with pytest.raises(DataError, match="--overwrite"):
        load_base("sasrec", tiny)
    assert not ensure_sasrec(tiny, FAST)["reused"]
    (rl4rec_dirs["emb"] / "tiny-ml_sasrec.pt").write_bytes(b"not a torch file")
    third = ensure_sasrec(tiny, FAST)
    assert not third["reused"] and third["best_epoch"] == first["best_epoch"]
    hist = tiny.split("valid").histories
    assert load_base("sasrec", tiny).score(hist).shape == (len(hist), tiny.num_items)
