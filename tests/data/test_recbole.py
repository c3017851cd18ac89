"""RecBole atomic-file loader and the shared validation rules, on small files written here."""

from __future__ import annotations

import json

import pytest

from rl4rec_core.data import load_dataset, prepare_dataset
from rl4rec_core.errors import DataError
from tests.helpers.recbole_files import ITEMS, write_recbole


def test_orders_by_timestamp_stably_and_indexes_numerically(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", [
        "u1\t10\t5\t300", "u1\t2\t4\t100", "u1\t7\t3\t200", "u1\t3\t3\t200",  # 7 and 3 tie: file order kept
        "u0\t3\t1\t5", "u0\t2\t1\t6", "u0\t10\t1\t7",
    ], ITEMS)
    folder = prepare_dataset("toy", source=src)
    ds = load_dataset("toy")
    # numeric ids sort numerically: 2 -> 0, 3 -> 1, 7 -> 2, 10 -> 3
    assert ds.items["item_id"].tolist() == ["2", "3", "7", "10"]
    assert ds.items["item_idx"].tolist() == [0, 1, 2, 3]
    assert ds.items.columns.tolist() == ["item_idx", "item_id", "title", "year", "genres"]
    assert ds.items.loc[0, "genres"] == "Comedy, Drama"
    seqs = dict(zip(ds.sequences["user_id"], ds.sequences["items"].map(list)))
    assert seqs == {"u1": [0, 2, 1, 3], "u0": [1, 0, 3]}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["counts"] == {"users": 2, "items": 4, "interactions": 7}
    assert meta["timestamp_ties"] == {"groups": 1, "interactions": 2, "users_whose_last_two_items_tie": 0}
    assert meta["item_text_template"] == "movielens"


def test_without_timestamp_keeps_file_order(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", ["a\t10", "a\t3", "a\t2"], ITEMS,
                        inter_header="user_id:token\titem_id:token")
    prepare_dataset("toy", source=src)
    ds = load_dataset("toy")
    assert list(ds.sequences["items"][0]) == [2, 1, 0]  # item 7 unused: 2 -> 0, 3 -> 1, 10 -> 2
    assert ds.meta["order"].startswith("file order")
    assert ds.meta["dropped"] == {"items_without_interactions": 1}  # item 7 never used


def test_unknown_items_and_short_users_are_counted_drops(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", [
        "a\t10\t1\t1", "a\t2\t1\t2", "a\t3\t1\t3", "a\t99\t1\t4",  # 99 is not in the item file
        "b\t10\t1\t1", "b\t2\t1\t2",  # 2 items: too short
    ], ITEMS)
    prepare_dataset("toy", source=src)
    ds = load_dataset("toy")
    assert ds.num_users == 1 and ds.sequences["user_id"].tolist() == ["a"]
    assert ds.meta["dropped"] == {"unknown_item_interactions": 1, "users_with_fewer_than_3_items": 1,
                                  "interactions_of_those_users": 2, "items_without_interactions": 1}
    assert ds.meta["counts"]["interactions"] == 3


def test_unknown_items_can_be_an_error(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", ["a\t10\t1\t1", "a\t2\t1\t2", "a\t3\t1\t3", "a\t99\t1\t4"], ITEMS)
    with pytest.raises(DataError, match=r"1 of 4 interactions .* missing from .*toy.item \(e.g. 99\)"):
        prepare_dataset("toy", source=src, unknown_items="error")


@pytest.mark.parametrize("inter_rows, items, inter_header, message", [
    (["a\t10\t1"], ITEMS, None, r"toy.inter:2: 3 tab-separated fields, the header has 4"),
    (["a\t10\t1\tyesterday"], ITEMS, None, r"toy.inter:2: timestamp 'yesterday' is not a number"),
    (["a\t10\t1\t1"], ITEMS, "user:token\titem_id:token\trating:float\ttimestamp:float", r"no 'user_id' column"),
    (["a\t10\t1\t1"], ITEMS, "user_id\titem_id\trating\ttimestamp", r"header column 'user_id' is not 'field:type'"),
    (["a\t10\t1\t1"], ITEMS + ["2\tBeta again\t1991\tDrama"], None, r"1 item id\(s\) appear more than once, e.g. 2"),
    (["a\t10\t1\t1", "a\t2\t1\t2"], ITEMS, None, r"no user has 3 or more known items"),
    ([], ITEMS, None, r"toy.inter: no interactions"),
    (["a\t10\t1\t1"], [], None, r"toy.item: no items"),
])
def test_bad_input_is_a_clear_error(rl4rec_dirs, tmp_path, inter_rows, items, inter_header, message):
    kwargs = {"inter_header": inter_header} if inter_header else {}
    src = write_recbole(tmp_path / "raw", inter_rows, items, **kwargs)
    with pytest.raises(DataError, match=message) as e:
        prepare_dataset("toy", source=src)
    assert "Fix:" in str(e.value)
    assert not (rl4rec_dirs["data"] / "toy").exists()  # nothing half-written


def test_missing_title_column_is_named(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", ["a\t10\t1\t1"], ["10\tDrama"], item_header="item_id:token\tclass:token_seq")
    with pytest.raises(DataError, match=r"toy.item: no 'title' column \(columns: item_id, genres\)"):
        prepare_dataset("toy", source=src)


def test_missing_item_file_and_ambiguous_folder(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", ["a\t10\t1\t1"], ITEMS)
    (src / "toy.item").unlink()
    with pytest.raises(DataError, match=r"toy.item is missing"):
        prepare_dataset("toy", source=src)
    (src / "other.inter").write_text("user_id:token\titem_id:token\n")
    with pytest.raises(DataError, match=r"expected one NAME.inter file, found other.inter, toy.inter"):
        prepare_dataset("third", source=src, fmt="recbole")
