"""Registry tasks: register a trained checkpoint as a model version, move the champion alias."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import registry


# not retried: every attempt would create another model version
@task(name="register_model", cache_policy=NO_CACHE)
def register_model(
    mlflow_run_id: str,
    checkpoint: str,
    model_name: str,
    alias: str | None = registry.CHALLENGER,
    log_transformers: bool = False,
    retrieval_settings: str | None = None,
) -> dict[str, Any]:
    """Log the checkpoint as a model in the run, register it under ``model_name``, set ``alias``.

    ``retrieval_settings``: the tuned scorer's settings file; it is copied into the checkpoint (so the
    model artifact carries it) and its scorer becomes the version's ``rl4rec.scorer`` tag.
    """
    tags = {"mlflow_run_id": mlflow_run_id}
    if retrieval_settings:
        tags.update(registry.attach_retrieval_settings(checkpoint, retrieval_settings))
    uri = registry.log_policy_model(mlflow_run_id, checkpoint, log_transformers=log_transformers)
    version = registry.register_policy(uri, model_name, alias=alias, tags=tags)
    return {"name": model_name, "version": version, "model_uri": uri}


# moving an alias is idempotent
@task(name="promote_model", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def promote_model(model_name: str, version: int, alias: str = registry.CHAMPION) -> int:
    registry.set_alias(model_name, version, alias)
    return version


@task(name="fetch_model_checkpoint", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def fetch_model_checkpoint(model_name: str, alias: str = registry.CHAMPION) -> str | None:
    """Local checkpoint folder of the version behind ``alias``, or None when no version has it."""
    if registry.alias_version(model_name, alias) is None:
        return None
    return str(registry.version_checkpoint(model_name, alias=alias))
