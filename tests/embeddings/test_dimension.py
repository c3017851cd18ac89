"""An embedding file of another dimension than its model gives, with a sidecar rewritten to agree with it
(issue 14, part 5). Before: the echo baselines and tuning scored with it silently, and the service refused
it without naming the file or the fix. Now every reader checks the model's own dimension."""

from __future__ import annotations

import json

import pytest

from rl4rec_core.cli import main as cli_main
from rl4rec_core.embeddings.files import load_item_embeddings
from rl4rec_core.errors import DataError
from rl4rec_core.evaluation.baselines import make_baseline
from rl4rec_core.retrieval import RetrievalService
from rl4rec_core.settings import RetrievalSettings
from tests.helpers.embeddings import random_items, write_embeddings
from tests.helpers.tiny_recdata import WordVectorEncoder

FIX = r"Fix: regenerate it with `rl4rec embed --dataset {} .*--force`"


def _foreign_file(ds, dim=64):
    """A ``dim``-dimensional file under the MiniLM name (384), its sidecar agreeing: ``dim``, checksum and all."""
    return write_embeddings(ds.name, random_items(ds.num_items, dim=dim))


def test_the_model_dimension_is_read_from_the_model_folder(tmp_path):
    from rl4rec_core.embeddings.encoders import model_dimension

    assert model_dimension("all-MiniLM-L6-v2") == 384
    assert model_dimension("sentence-transformers/all-MiniLM-L6-v2") == 384
    assert model_dimension("no-such/model-anywhere") is None
    folder = tmp_path / "m"
    (folder / "1_Pooling").mkdir(parents=True)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 768, "pooling_mode": "cls"}))
    assert model_dimension(str(folder)) == 768
    # layouts whose size a config cannot tell for every backend: no guess
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 768,
                                                                  "pooling_mode": ["cls", "mean"]}))
    assert model_dimension(str(folder)) is None
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    assert model_dimension(str(folder)) is None


def test_loading_checks_the_model_dimension(tiny):
    path = _foreign_file(tiny)
    with pytest.raises(DataError, match=rf"{path.name} has dimension 64 but 384 was expected: "
                                        rf"sentence-transformers/all-MiniLM-L6-v2 gives 384.*" + FIX.format(tiny.name)):
        load_item_embeddings(tiny.name)


@pytest.mark.parametrize("use", ["echo baseline", "tune-retrieval"])
def test_the_echo_baseline_and_tuning_refuse_another_models_file(tiny, use):
    from rl4rec_core.retrieval.tuning import tune_retrieval

    _foreign_file(tiny)
    with pytest.raises(DataError, match=r"has dimension 64 but 384 was expected"):  # before: scored silently
        make_baseline("echo", tiny, RetrievalSettings()) if use == "echo baseline" else tune_retrieval(
            tiny.name, RetrievalSettings())


def test_evaluate_refuses_it_in_one_line(tiny, capsys):
    _foreign_file(tiny)
    assert cli_main(["evaluate", "--dataset", tiny.name, "--split", "valid", "--baseline", "echo"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "has dimension 64 but 384 was expected" in err and "--force" in err


def test_the_service_checks_the_file_against_its_encoder(rl4rec_dirs):
    """A model whose folder tells nothing: the loaded encoder's dimension decides, and the error names the file."""
    encoder = WordVectorEncoder(dim=32)
    encoder.model_name = encoder.short_name = "lookup"
    path = write_embeddings("small", random_items(10, dim=16), model="lookup")
    with pytest.raises(DataError, match=rf"{path.name} has dimension 16 but 32 was expected: lookup gives "
                                        r"32-dimensional vectors.*" + FIX.format("small")):
        RetrievalService(RetrievalSettings(emb_model_name="lookup"), ["small"], encoder=encoder)
    write_embeddings("small", random_items(10, dim=32), model="lookup")
    assert RetrievalService(RetrievalSettings(emb_model_name="lookup"), ["small"], encoder=encoder).datasets() == {"small": (10, 32)}
