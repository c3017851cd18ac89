"""Leave-one-out splits, reuse/--force of prepared data, and the `rl4rec data` commands."""

from __future__ import annotations

import json

import pytest
import torch

from rl4rec_core.cli import main
from rl4rec_core.data import load_dataset, prepare_dataset
from rl4rec_core.errors import ConfigError, MissingArtifactError
from tests.helpers.recbole_files import ITEMS, write_recbole

# user a: items 2,3,7,10 -> indices 0,1,2,3 ; user b: 10,7,3 -> 3,2,1 (exactly 3 items)
ROWS = ["a\t2\t1\t1", "a\t3\t1\t2", "a\t7\t1\t3", "a\t10\t1\t4", "b\t10\t1\t1", "b\t7\t1\t2", "b\t3\t1\t3"]


@pytest.fixture
def toy(rl4rec_dirs, tmp_path):
    src = write_recbole(tmp_path / "raw", ROWS, ITEMS)
    prepare_dataset("toy", source=src)
    return src


def test_leave_one_out_splits(toy):
    ds = load_dataset("toy")
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (2, 4, 7)
    assert ds.item_titles == ["Beta", "Delta", "Gamma", "Alpha"]
    test, valid, train = ds.split("test"), ds.split("valid"), ds.split("train")
    assert test.histories == [[0, 1, 2], [3, 2]] and test.targets.tolist() == [3, 1]
    assert valid.histories == [[0, 1], [3]] and valid.targets.tolist() == [2, 2]
    assert train.histories == [[0], []] and train.targets.tolist() == [1, 3]
    for s in (test, valid, train):
        assert s.user_idx.dtype == torch.long and s.user_idx.tolist() == [0, 1]
        assert s.targets.dtype == torch.long and len(s) == 2
    assert ds.train_histories() == [[0, 1], [3]]
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        ds.split("dev")


def test_parquet_schema_matches_the_contract(toy, rl4rec_dirs):
    import pyarrow.parquet as pq

    folder = rl4rec_dirs["data"] / "toy"
    items = pq.read_schema(folder / "items.parquet")
    assert [(f.name, str(f.type)) for f in items] == [
        ("item_idx", "int64"), ("item_id", "string"), ("title", "string"), ("year", "string"), ("genres", "string")]
    seqs = pq.read_schema(folder / "sequences.parquet")
    assert [(f.name, str(f.type)) for f in seqs] == [
        ("user_idx", "int64"), ("user_id", "string"), ("items", "list<element: int64>")]


def test_prepare_reuses_unless_forced_and_refuses_another_source(toy, tmp_path, rl4rec_dirs):
    meta_path = rl4rec_dirs["data"] / "toy" / "meta.json"
    created = json.loads(meta_path.read_text())["created"]
    meta_path.write_text(meta_path.read_text().replace(created, "marker"))
    prepare_dataset("toy", source=toy)  # same source: reused, not rewritten
    assert json.loads(meta_path.read_text())["created"] == "marker"
    other = write_recbole(tmp_path / "other", ROWS[:4], ITEMS)
    with pytest.raises(ConfigError, match="was prepared from .*raw, not .*other.*--force"):
        prepare_dataset("toy", source=other)
    prepare_dataset("toy", source=other, force=True)
    assert load_dataset("toy").num_users == 1


def test_failed_rebuild_keeps_the_old_tables(toy, tmp_path):
    broken = write_recbole(tmp_path / "broken", ["a\t2\t1"], ITEMS)
    with pytest.raises(Exception):
        prepare_dataset("toy", source=broken, force=True)
    assert load_dataset("toy").num_users == 2


def test_load_missing_dataset_says_how_to_prepare(rl4rec_dirs):
    with pytest.raises(MissingArtifactError, match="rl4rec data prepare --dataset nothing"):
        load_dataset("nothing")


def test_bad_names_and_formats(rl4rec_dirs, tmp_path):
    with pytest.raises(ConfigError, match="dataset name '../x'"):
        prepare_dataset("../x")
    with pytest.raises(ConfigError, match="unknown format 'csv'"):
        prepare_dataset("x", source=tmp_path, fmt="csv")


def test_cli_prepare_and_info(toy, capsys):
    assert main(["data", "prepare", "--dataset", "toy", "--source", str(toy)]) == 0
    out = capsys.readouterr().out
    assert "toy is already prepared" in out and "users:        2" in out and "interactions: 7" in out
    assert main(["data", "prepare", "--dataset", "toy", "--source", str(toy), "--force"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prepared toy (recbole)") and "dropped:      nothing" in out
    assert main(["data", "info", "--dataset", "toy"]) == 0
    out = capsys.readouterr().out
    assert "item 0: Beta (1991). Genres: Comedy, Drama" in out and "items/user:   min 3, median 3, max 4" in out


def test_cli_errors_exit_2_without_traceback(rl4rec_dirs, capsys):
    assert main(["data", "info", "--dataset", "absent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'absent' is not prepared") and "Traceback" not in err
