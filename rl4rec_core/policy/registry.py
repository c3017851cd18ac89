"""The policies by name: ``llm`` (``RecPolicy``) and ``dummy`` (``DummyRecPolicy``), each built from
``Settings`` in one place for the CLI, the flows and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import Settings
from rl4rec_core.policy.algorithms import AlgoConfig

# the dummy policy's logits move in whole units, an LLM's LoRA weights in small steps (docs/recipe.md)
DEFAULT_LEARNING_RATES = {"dummy": 0.05, "llm": 2e-4}
# a policy started from another one keeps the prompt it was trained with, unless told otherwise
INHERITED_FIELDS = ("prompt_template", "history_len", "response_prefix", "system_prompt", "use_chat_template",
                    "item_noun", "max_prompt_tokens")


def algo_config(settings: Settings) -> AlgoConfig:
    a = settings.algorithm
    return AlgoConfig(algorithm=a.algorithm, group_size=a.group_size, kl_coef=a.kl_coef, **a.algo_overrides())


def learning_rate(settings: Settings) -> float:
    return settings.algorithm.learning_rate or DEFAULT_LEARNING_RATES[settings.policy.policy]


def _dummy(settings: Settings, dataset, device: str):
    from rl4rec_core.policy.dummy import DummyRecPolicy

    return DummyRecPolicy.from_dataset(
        _union(dataset), learning_rate=learning_rate(settings), algo=algo_config(settings), seed=settings.run.seed
    )


def _union(dataset):
    """A dataset, or for a run on several (a list) one whose items are all of theirs: the dummy policy's
    vocabulary then has the words of every dataset. Only text columns: a column one dataset lacks is empty."""
    if not isinstance(dataset, (list, tuple)):
        return dataset
    import types

    import pandas as pd

    items = pd.concat([ds.items.select_dtypes(exclude="number") for ds in dataset], ignore_index=True)
    return types.SimpleNamespace(items=items.fillna(""))


def _llm(settings: Settings, dataset, device: str):
    from rl4rec_core.policy.prompts import item_noun_for
    from rl4rec_core.policy.rec_policy import RecPolicy

    p = settings.policy
    kwargs: dict[str, Any] = p.llm_kwargs()
    if p.init_from:
        from rl4rec_core.policy.warm_start import read_init_config

        start = read_init_config(p.init_from)
        for name in INHERITED_FIELDS:
            if name in start:
                kwargs.setdefault(name, start[name])
        kwargs["init_from"] = p.init_from
    # small models need the domain word: SmolLM2 names real films for "movie", rambles for "item"
    kwargs.setdefault("item_noun", item_noun_for(settings.run.dataset_name))
    return RecPolicy(model_name=p.policy_model, device=device, lora=p.lora, learning_rate=learning_rate(settings),
                     algo=algo_config(settings), seed=settings.run.seed, **kwargs)


POLICY_BUILDERS: dict[str, Callable[[Settings, Any, str], Any]] = {"llm": _llm, "dummy": _dummy}


def build_policy(settings: Settings, dataset, device: str | None = None):
    """A fresh policy of the kind ``settings.policy.policy`` names, on ``device`` (default: the run's)."""
    builder = POLICY_BUILDERS.get(settings.policy.policy)
    if builder is None:
        raise ConfigError(f"unknown policy {settings.policy.policy!r}; choose one of {', '.join(POLICY_BUILDERS)}")
    return builder(settings, dataset, device or settings.run.device)
