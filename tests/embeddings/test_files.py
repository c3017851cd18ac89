"""Item embedding files: generation with the real packaged MiniLM, sidecar, reuse, validation, atomicity."""

import json
import logging

import pandas as pd
import pytest
import torch

from rl4rec_core.data import load_dataset
from rl4rec_core.data.item_text import render_item_texts
from rl4rec_core.embeddings import files as ie
from rl4rec_core.embeddings.encoders import make_encoder
from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.io import sha256_file

MOVIES = [  # (title, year, genres) of real MovieLens-100k items
    ("Toy Story", "1995", "Animation, Children's, Comedy"),
    ("GoldenEye", "1995", "Action, Adventure, Thriller"),
    ("Four Rooms", "1995", "Thriller"),
    ("Get Shorty", "1995", "Action, Comedy, Drama"),
    ("Copycat", "1995", "Crime, Drama, Thriller"),
    ("Twelve Monkeys", "1995", "Drama, Sci-Fi"),
]


def write_dataset(data_dir, name="tiny", movies=MOVIES):
    folder = data_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame(
        [{"item_idx": i, "item_id": str(i + 1), "title": t, "year": y, "genres": g} for i, (t, y, g) in enumerate(movies)]
    )
    seqs = pd.DataFrame([{"user_idx": 0, "user_id": "1", "items": [0, 1, 2, 3]}, {"user_idx": 1, "user_id": "2", "items": [3, 4, 5]}])
    items.to_parquet(folder / "items.parquet", index=False)
    seqs.to_parquet(folder / "sequences.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps({"name": name, "item_text_template": "movielens"}))
    return load_dataset(name)


class CountingEncoder:
    """The real encoder, counting how often it is asked to encode (to prove reuse skips it)."""

    def __init__(self, inner, fail=False):
        self.inner, self.fail, self.calls = inner, fail, 0
        self.model_name, self.short_name, self.dim, self.backend = inner.model_name, inner.short_name, inner.dim, inner.backend

    def encode(self, texts, batch_size=64, progress=False):
        self.calls += 1
        if self.fail:
            raise RuntimeError("encoder crashed half-way")
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)


@pytest.fixture(scope="module")
def minilm():
    return make_encoder("all-MiniLM-L6-v2", backend="sentence-transformers")


@pytest.fixture
def tiny(rl4rec_dirs):
    return write_dataset(rl4rec_dirs["data"])


def generate(ds, enc, **kw):
    return ie.generate_item_embeddings(ds, "all-MiniLM-L6-v2", encoder=enc, **kw)


def test_generate_writes_tensor_and_sidecar(tiny, minilm, rl4rec_dirs):
    path = generate(tiny, CountingEncoder(minilm), batch_size=4)
    assert path == rl4rec_dirs["emb"] / "tiny_item_all-MiniLM-L6-v2.pt"
    emb = torch.load(path, weights_only=True)
    assert emb.dtype == torch.float32 and emb.shape == (6, 384)
    # row i is item i: compare with encoding the rendered texts directly
    texts = render_item_texts(tiny.items)
    assert texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert torch.allclose(emb, minilm.encode(texts), atol=1e-5)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["dataset"] == "tiny" and meta["emb_type"] == "item"
    assert meta["model_name"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["short_name"] == "all-MiniLM-L6-v2"
    assert (meta["dim"], meta["num_items"], meta["template"], meta["backend"]) == (384, 6, "movielens", "sentence-transformers")
    assert meta["input_hash"] == ie.input_hash(texts, "all-MiniLM-L6-v2", "movielens")
    loaded, side = ie.load_item_embeddings("tiny", expect_dim=384, expect_items=6)
    assert torch.equal(loaded, emb) and side == meta
    assert not list(rl4rec_dirs["emb"].glob(".*.tmp"))  # no temporary files left behind


def test_same_inputs_reuse_the_file(tiny, minilm, caplog):
    enc = CountingEncoder(minilm)
    path = generate(tiny, enc)
    before = path.read_bytes(), path.with_suffix(".json").read_text()
    with caplog.at_level(logging.INFO, logger="rl4rec_core.embeddings.files"):
        assert generate(tiny, enc) == path
    assert enc.calls == 1  # the second run never encoded
    assert "reusing" in caplog.text
    assert (path.read_bytes(), path.with_suffix(".json").read_text()) == before
    # the alias of the packaged model is the same model: still reused
    ie.generate_item_embeddings(tiny, "sentence-transformers/all-MiniLM-L6-v2", encoder=enc)
    assert enc.calls == 1


def test_force_and_changed_inputs_re_encode(tiny, minilm, rl4rec_dirs):
    enc = CountingEncoder(minilm)
    generate(tiny, enc)
    generate(tiny, enc, force=True)
    assert enc.calls == 2
    generate(tiny, enc, template="title")  # other template -> other texts -> other hash
    assert enc.calls == 3
    assert json.loads(ie.sidecar_path(ie.embedding_path("tiny")).read_text())["template"] == "title"
    renamed = [("Toy Story 2", "1999", "Animation, Children's, Comedy"), *MOVIES[1:]]
    ds2 = write_dataset(rl4rec_dirs["data"], movies=renamed)  # re-prepared data with a changed item
    generate(ds2, enc, template="title")
    assert enc.calls == 4


def test_encoder_failure_keeps_the_old_file(tiny, minilm):
    path = generate(tiny, CountingEncoder(minilm))
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()
    with pytest.raises(RuntimeError, match="half-way"):
        generate(tiny, CountingEncoder(minilm, fail=True), force=True)
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before


def test_failure_while_writing_keeps_the_old_file(tiny, minilm, monkeypatch):
    path = generate(tiny, CountingEncoder(minilm))
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()

    def save_half_then_crash(obj, f):
        # write a truncated file (like a full disk or a kill mid-write), then fail
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 truncated")
        raise OSError("No space left on device")

    with monkeypatch.context() as m:
        m.setattr(ie.torch, "save", save_half_then_crash)
        with pytest.raises(OSError, match="No space"):
            generate(tiny, CountingEncoder(minilm), force=True)
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert not list(path.parent.glob(".*.tmp"))
    emb, _ = ie.load_item_embeddings("tiny", expect_items=6)
    assert emb.shape == (6, 384)


def test_mismatched_encoder_and_bad_batch_size(tiny, minilm):
    with pytest.raises(ConfigError, match="encoder is .* but emb_model is 'mixedbread-ai/mxbai-embed-large-v1'"):
        ie.generate_item_embeddings(tiny, "mixedbread-ai/mxbai-embed-large-v1", encoder=minilm)
    with pytest.raises(ConfigError, match="batch_size"):
        generate(tiny, minilm, batch_size=0)
    with pytest.raises(ConfigError, match="without slashes"):
        ie.embedding_path("../evil", "item")


# ---- validation on load: each bad file gets its own clear error naming the fix ----

def write_raw(tensor, dataset="tiny", **meta_overrides):
    """Write an embedding file plus a sidecar consistent with it (checksum included), then override fields."""
    path = ie.embedding_path("tiny", "item", "all-MiniLM-L6-v2")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tensor, path)
    shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else ()
    meta = {
        "dataset": dataset,
        "emb_type": "item",
        "model_name": "sentence-transformers/all-MiniLM-L6-v2",
        "num_items": shape[0] if shape else 0,
        "dim": shape[1] if len(shape) > 1 else 0,
        "file_sha256": sha256_file(path),
        **meta_overrides,
    }
    ie.sidecar_path(path).write_text(json.dumps(meta))
    return path


def test_missing_file_names_the_embed_command(rl4rec_dirs):
    with pytest.raises(MissingArtifactError, match="rl4rec embed --dataset tiny --emb_model all-MiniLM-L6-v2 --emb_type item"):
        ie.load_item_embeddings("tiny")


def test_missing_sidecar(rl4rec_dirs):
    path = write_raw(torch.zeros(6, 4))
    ie.sidecar_path(path).unlink()
    with pytest.raises(MissingArtifactError, match="sidecar.*--force"):
        ie.load_item_embeddings("tiny")


@pytest.mark.parametrize(
    "tensor, overrides, message",
    [
        (torch.zeros(6, 4, dtype=torch.float64), {}, "dtype torch.float64, expected torch.float32"),
        (torch.zeros(6), {}, "expected 2-D"),
        (torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), {}, "NaN/Inf values in 1 item rows"),
        (torch.tensor([[0.0, float("inf")], [1.0, 0.0]]), {}, "NaN/Inf"),
        (torch.zeros(6, 4), {"dataset": "ml-100k"}, "made for dataset 'ml-100k', not 'tiny'"),
        (torch.zeros(6, 4), {"model_name": "mixedbread-ai/mxbai-embed-large-v1"}, "made with model"),
        (torch.zeros(6, 4), {"num_items": 7}, r"sidecar says \[7, 4\]"),
        (torch.zeros(6, 4), {"file_sha256": "0" * 64}, "checksum"),
        ({"not": "a tensor"}, {}, "not a tensor"),
    ],
)
def test_bad_files_are_rejected(rl4rec_dirs, tensor, overrides, message):
    write_raw(tensor, **overrides)
    with pytest.raises(DataError, match=message) as err:
        ie.load_item_embeddings("tiny")
    assert "--force" in str(err.value)  # every message says how to regenerate


def test_expected_items_and_dim(rl4rec_dirs):
    write_raw(torch.zeros(6, 4))
    with pytest.raises(DataError, match="6 item rows but the dataset has 7 items"):
        ie.load_item_embeddings("tiny", expect_items=7)
    with pytest.raises(DataError, match="dimension 4 but 384 was expected"):
        ie.load_item_embeddings("tiny", expect_dim=384)


def test_corrupt_file(rl4rec_dirs):
    path = write_raw(torch.zeros(6, 4))
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        ie.load_item_embeddings("tiny", verify_checksum=False)


@pytest.mark.slow
def test_cli_embed(tiny, capsys):
    from rl4rec_core.cli import main as cli_main

    argv = ["embed", "--dataset", "tiny", "--emb_model_name", "all-MiniLM-L6-v2", "--emb_backend", "sentence-transformers"]
    assert cli_main(argv) == 0
    assert "tiny_item_all-MiniLM-L6-v2.pt: 6 items x 384 dims" in capsys.readouterr().out
    emb, meta = ie.load_item_embeddings("tiny", expect_items=6, expect_dim=384)
    assert meta["backend"] == "sentence-transformers"
    # unknown dataset: exit code 2 and the prepare command
    assert cli_main(["embed", "--dataset", "nope"]) == 2
    assert "rl4rec data prepare --dataset nope" in capsys.readouterr().err
