"""``rl4rec train --dataset_name a,b`` and ``rl4rec evaluate --dataset a,b`` as a user runs them: two prepared
datasets (MovieLens titles, and an Amazon layout prepared from raw files) with real MiniLM embeddings."""

from __future__ import annotations

import json

from rl4rec_core.cli import main
from rl4rec_core.data import load_dataset
from rl4rec_core.embeddings.files import generate_item_embeddings
from tests.helpers.tiny_amazon import prepare_tiny_amazon
from tests.helpers.tiny_recdata import write_tiny_dataset


def test_train_and_evaluate_a_list(rl4rec_dirs, tmp_path, capsys):
    names = [write_tiny_dataset(rl4rec_dirs["data"]), prepare_tiny_amazon(tmp_path)]
    for name in names:
        generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    listed = ",".join(names)
    assert main(["train", "--dataset_name", listed, "--dataset_weights", "1,1", "--use_dummy", "--num_steps", "4",
                 "--batch_size", "8", "--group_size", "4", "--save_every", "2", "--service", "local",
                 "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert f"dataset '{names[0]}'" in out and f"dataset '{names[1]}'" in out  # one in-process service, both held
    run = rl4rec_dirs["ckpt"] / f"{names[0]}+{names[1]}_rl"
    records = [json.loads(line) for line in (run / "training_log.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r[f"users/{names[0]}"] + r[f"users/{names[1]}"] == 2 for r in records)

    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", "--dataset", listed, "--split", "valid", "--baseline", "popularity",
                 "--checkpoint", str(run / "checkpoint_final"), "--emb_backend", "sentence-transformers",
                 "--output", str(metrics)]) == 0
    out = capsys.readouterr().out
    for name in names:  # a table per dataset, and a file per dataset beside the named one
        assert f"{name} · valid split" in out
        saved = json.loads((tmp_path / f"metrics.{name}.json").read_text())
        assert set(saved["results"]) == {"popularity", "policy:checkpoint_final", "untrained"}
        assert saved["results"]["popularity"]["users"] == load_dataset(name).num_users


def test_bad_lists_exit_2_with_the_fix(rl4rec_dirs, tmp_path, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"])
    assert main(["train", "--use_dummy", "--dataset_name", f"{name},nowhere", "--service", "local"]) == 2
    err = capsys.readouterr().err
    assert "dataset 'nowhere' of the list" in err and "rl4rec data prepare --dataset nowhere" in err
    assert main(["train", "--use_dummy", "--dataset_name", f"{name},b", "--source", str(tmp_path)]) == 2
    assert "--source prepares one dataset" in capsys.readouterr().err
    assert main(["train", "--use_dummy", "--dataset_name", f"{name},b", "--dataset_weights", "1,2,3"]) == 2
    assert "3 values for 2 datasets" in capsys.readouterr().err
