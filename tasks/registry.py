"""The MLflow model registry: log a trained policy as a model, register it, move aliases, load it back,
and the flows' registry tasks (``register_model``, ``promote_model``, ``fetch_model_checkpoint``).

A policy is logged as a pyfunc model whose artifact is the training checkpoint folder
(``checkpoint_final/``: ``policy/`` + ``config.json``), so the very same code that trained it rebuilds it.
``predict`` turns users' item histories (lists of titles) into the policy's generated texts.
For an LLM policy the merged model and tokenizer are also logged with the ``transformers`` flavour
(task ``text-generation``) when ``log_transformers=True``, for serving without rl4rec. The model is where
the final checkpoint is kept in MLflow: a flow that registers its policy does not also log it as a run artifact.

Aliases: ``challenger`` = the latest trained candidate; ``champion`` = the one in use. The
retraining flow moves ``champion`` only when the challenger wins (see ``flows/retraining.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from rl4rec_core.checkpoints import policy_kind
from rl4rec_core.errors import MissingArtifactError
from tasks import tracking

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_ARTIFACT = "policy_model"


def policy_from_checkpoint(checkpoint: str | Path):
    """Rebuild the trained policy (dummy or LLM) saved in a checkpoint folder."""
    from rl4rec_core.evaluation.policy_eval import load_policy

    return load_policy(checkpoint, trained=True)


def log_policy_model(run_id: str, checkpoint: str | Path, log_transformers: bool = False) -> str:
    """Log the checkpoint as a pyfunc model linked to ``run_id``; returns its model URI (``models:/m-...``).

    The model carries its signature (from ``predict``'s type hints), an input example, pinned requirements,
    rl4rec's code (``code_paths``) and, when the dataset's item embeddings are here, its catalogue.
    """
    import tempfile

    import mlflow

    from tasks import serving
    from tasks.serving import PolicyModel

    ckpt = Path(checkpoint)
    kind = policy_kind(ckpt)
    tracking.configure_mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = serving.catalogue_from_checkpoint(ckpt, Path(tmp) / "catalogue")
        artifacts = {"checkpoint": str(ckpt)} | ({"catalogue": str(catalogue)} if catalogue else {})
        # our own class is pickled on purpose: MLflow's CloudPickle caution (a WARNING per model) is not news
        # load_once: log_model loads the model twice (predict on the example, then the saved copy): once here
        with mlflow.start_run(run_id=run_id), _logger_level("mlflow.pyfunc", logging.ERROR), serving.load_once():
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT, python_model=PolicyModel(), artifacts=artifacts,
                input_example=serving.input_example(), code_paths=serving.code_paths(),
                pip_requirements=serving.pinned_requirements(kind, catalogue=catalogue is not None),
                metadata={"rl4rec_policy_kind": kind, "rl4rec_catalogue": catalogue is not None},
            )
            if log_transformers and kind != "dummy":
                tf_uri = _log_transformers(policy_from_checkpoint(ckpt))
                if tf_uri:
                    mlflow.set_tag("rl4rec.transformers_model_uri", tf_uri)
    # MLflow 3 keeps models as "logged models" linked to the run (models:/m-...), not as run artifacts
    return info.model_uri


@contextlib.contextmanager
def _logger_level(name: str, level: int):
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextlib.contextmanager
def _registry_chatter_off():
    """MLflow prints "Successfully registered model" / "Created version" unconditionally; when its loggers are
    set above INFO (MLFLOW_LOGGING_LEVEL, as `rl4rec run` sets it) those lines go too: the caller reports it."""
    from mlflow.utils import logging_utils

    quiet = logging.getLogger("mlflow").getEffectiveLevel() > logging.INFO
    if quiet:
        logging_utils.disable_logging()
    try:
        yield
    finally:
        if quiet:
            logging_utils.enable_logging()


def _log_transformers(policy) -> str | None:
    """The merged LM + tokenizer as an MLflow ``transformers`` model (task text-generation); its URI."""
    import mlflow

    model = getattr(policy, "model", None)
    tok = getattr(policy, "tokenizer", None)
    if model is None or tok is None:
        log.warning("policy %s exposes no .model/.tokenizer; transformers flavour skipped", type(policy).__name__)
        return None
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: serve the merged weights
        model = model.merge_and_unload()
    import torch
    import transformers

    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tok}, name="policy_transformers", task="text-generation",
        # the inferred list names torchvision, which CPU torch here does not have
        pip_requirements=[f"transformers=={transformers.__version__}", f"torch=={torch.__version__.split('+')[0]}"],
    )
    return info.model_uri


def attach_retrieval_settings(checkpoint: str | Path, settings_file: str | Path) -> dict[str, str]:
    """Copy the tuned retrieval settings into the checkpoint (``retrieval_settings.json``, atomically);
    the tags that name them on the registered version."""
    from rl4rec_core.io import write_json

    raw = json.loads(Path(settings_file).read_text())
    write_json(Path(checkpoint) / "retrieval_settings.json", raw)
    return {"rl4rec.scorer": str(raw.get("scorer")), "rl4rec.retrieval_settings": json.dumps(raw.get("settings"))}


def version_description(run_id: str, tags: dict[str, str], figures: dict[str, Any] | None = None, split: str = "test") -> str:
    """One paragraph for the MLflow UI: the run, the retrieval settings, the policy's figures on ``split``."""
    lines = [f"Trained in MLflow run {run_id}."]
    if "rl4rec.scorer" in tags:
        lines.append(f"Retrieval: {tags['rl4rec.scorer']} (settings {tags.get('rl4rec.retrieval_settings')}).")
    numbers = {tracking.metric_name(k): v for k, v in tracking.numeric_items(figures or {}).items() if k != "users"}
    if numbers:
        lines.append(f"{split.capitalize()}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(numbers.items())) + ".")
    return " ".join(lines)


def register_policy(model_uri: str, name: str, alias: str | None = CHALLENGER, tags: dict[str, str] | None = None) -> int:
    """Register ``model_uri`` under ``name`` (created on first use) and point ``alias`` at it; the version."""
    import mlflow

    tracking.configure_mlflow()
    with _registry_chatter_off():
        mv = mlflow.register_model(model_uri, name, tags=tags)
    if alias:
        tracking.client().set_registered_model_alias(name, alias, mv.version)
    return int(mv.version)


def set_alias(name: str, version: int, alias: str = CHAMPION) -> None:
    tracking.client().set_registered_model_alias(name, alias, str(version))


def alias_version(name: str, alias: str) -> int | None:
    """The version ``alias`` points at, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return int(tracking.client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def has_version(name: str, version: int) -> bool:
    """Whether registered model ``name`` has version ``version``."""
    from mlflow.exceptions import MlflowException

    try:
        tracking.client().get_model_version(name, str(version))
    except MlflowException:
        return False
    return True


def version_checkpoint(name: str, version: int | None = None, alias: str | None = None) -> Path:
    """Download (or find locally) the checkpoint folder of a registered version; the local path."""
    import mlflow

    tracking.configure_mlflow()
    ref = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
    local = Path(mlflow.artifacts.download_artifacts(f"{ref}"))
    for cand in (local / "artifacts" / "checkpoint", local / "artifacts"):
        if (cand / "config.json").is_file() or (cand / "policy").is_dir():
            return cand
    found = next((p.parent for p in local.rglob("config.json") if (p.parent / "policy").is_dir()), None)
    if found is None:
        raise MissingArtifactError(f"registered model {ref} holds no rl4rec checkpoint (looked in {local})")
    return found


def load_policy_by_alias(name: str, alias: str = CHAMPION):
    """The pyfunc model behind ``models:/{name}@{alias}``: ``.predict(histories) -> texts``;
    ``.unwrap_python_model().policy`` is the rebuilt RecPolicy/DummyRecPolicy."""
    import mlflow

    tracking.configure_mlflow()
    if alias_version(name, alias) is None:
        raise MissingArtifactError(
            f"no model version of {name!r} has alias {alias!r}; train and register one first "
            f"(`rl4rec run`) or see them in the MLflow UI (Models)"
        )
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")


# ---------------------------------------------------------------------------------------------------
# what the flows decide and record; plain functions, called by the flow between its tasks
def champion_version(name: str) -> int | None:
    """The version ``champion`` points at, or None before the first promotion."""
    return alias_version(name, CHAMPION)


def wants_promotion(name: str, promote: str) -> bool:
    """Whether a new version of ``name`` becomes champion: ``always``, or ``first`` while none is."""
    champion = champion_version(name)
    return promote == "always" or (promote == "first" and champion is None)


def record_registration(run_id: str, name: str, version: int, promoted: bool) -> None:
    """Tag the flow's run with the version it registered and whether that became champion."""
    tracking.set_tags(run_id, {"rl4rec.registered_model": name, "rl4rec.registered_version": version,
                               "rl4rec.promoted": promoted})


def record_decision(run_id: str, decision, challenger_version: int, champion_before: int | None) -> None:
    """A champion/challenger ``decision`` (``flows/promotion.py``'s ``PromotionDecision``) in the flow's
    run: tags ``rl4rec.decision*`` and its figures as metrics ``decision/*``."""
    tracking.set_tags(run_id, {
        "rl4rec.decision": "promoted" if decision.promote else "kept_champion",
        "rl4rec.decision_reason": decision.reason,
        "rl4rec.decision_rule": decision.rule,
        "rl4rec.challenger_version": challenger_version,
        "rl4rec.champion_version_before": champion_before if champion_before is not None else "none",
    })
    figures = {k: v for k, v in decision.to_dict().items() if k not in ("promote", "reason", "rule")}
    tracking.log_metrics(run_id, figures, prefix="decision/")
    tracking.log_metrics(run_id, {"promoted": float(decision.promote)}, prefix="decision/")


# ---------------------------------------------------------------------------------------------------
# tasks
# not retried: every attempt would create another model version
@task(name="register_model", cache_policy=NO_CACHE)
def register_model(
    mlflow_run_id: str,
    checkpoint: str,
    model_name: str,
    alias: str | None = CHALLENGER,
    log_transformers: bool = False,
    retrieval_settings: str | None = None,
    evaluation: dict[str, dict[str, Any]] | None = None,
    eval_split: str = "test",
    dataset: str | None = None,
) -> dict[str, Any]:
    """Log the checkpoint as a model in the run, register it under ``model_name``, set ``alias``.

    ``retrieval_settings``: the tuned scorer's settings file; it is copied into the checkpoint (so the
    model artifact carries it) and its scorer becomes the version's ``rl4rec.scorer`` tag.
    ``evaluation``: the flow's figures on ``eval_split`` per row (``{"policy": {"ndcg@10": ...}, "popularity":
    ...}``; ``{dataset}/policy`` rows in a run on several datasets): the policy's become metrics of the logged
    model, linked to the split of ``dataset`` as an MLflow dataset (``tasks/lineage.py``), and the version's
    description sums them up. The version records its run itself (``ModelVersion.run_id``).
    """
    from tasks import lineage

    tags = attach_retrieval_settings(checkpoint, retrieval_settings) if retrieval_settings else {}
    uri = log_policy_model(mlflow_run_id, checkpoint, log_transformers=log_transformers)
    version = register_policy(uri, model_name, alias=alias, tags=tags)
    model_id = uri.removeprefix("models:/")  # MLflow 3 names a logged model models:/<model_id>
    if evaluation:
        lineage.log_model_metrics(mlflow_run_id, model_id, evaluation, eval_split, dataset=dataset)
    policy_rows = [row for name, row in (evaluation or {}).items() if name.rpartition("/")[2] == lineage.POLICY_ROW]
    description = version_description(mlflow_run_id, tags, policy_rows[0] if len(policy_rows) == 1 else None, eval_split)
    tracking.client().update_model_version(model_name, str(version), description)
    return {"name": model_name, "version": version, "model_uri": uri, "model_id": model_id}


# moving an alias is idempotent
@task(name="promote_model", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def promote_model(model_name: str, version: int, alias: str = CHAMPION) -> int:
    set_alias(model_name, version, alias)
    return version


@task(name="fetch_model_checkpoint", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def fetch_model_checkpoint(model_name: str, alias: str = CHAMPION) -> str | None:
    """Local checkpoint folder of the version behind ``alias``, or None when no version has it."""
    if alias_version(model_name, alias) is None:
        return None
    return str(version_checkpoint(model_name, alias=alias))
