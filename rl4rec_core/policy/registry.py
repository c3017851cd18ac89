"""The policies by name (``settings.POLICIES``): ``llm`` (``RecPolicy``) and ``dummy`` (``DummyRecPolicy``),
each built from ``Settings`` in one place for the CLI, the flows and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.settings import POLICIES, Settings

# a policy started from another one keeps the prompt it was trained with, unless told otherwise
INHERITED_FIELDS = ("prompt_template", "history_len", "response_prefix", "system_prompt", "use_chat_template",
                    "item_noun")


def policy_config(settings: Settings, device: str | None = None) -> PolicyConfig:
    """The run's ``PolicyConfig``: the prompt fields left unset filled from ``init_from``'s saved policy, and
    the item noun from the dataset (small models need the domain word: SmolLM2 names real films for
    "movie", rambles for "item"). Training, SFT and evaluation all build their policy through here."""
    from rl4rec_core.policy.prompts import item_noun_for

    p = settings.policy
    fill: dict[str, Any] = {}
    if p.init_from:
        from rl4rec_core.policy.warm_start import read_init_config

        start = read_init_config(p.init_from)
        fill = {k: start[k] for k in INHERITED_FIELDS if getattr(p, k) is None and start.get(k) is not None}
    if fill.get("item_noun", p.item_noun) is None:
        fill["item_noun"] = item_noun_for(settings.run.dataset_name)
    fill.update(candidate_prompt(settings, fill.get("prompt_template", p.prompt_template)))
    return PolicyConfig.of(settings, device).replace(**fill)


def candidate_prompt(settings: Settings, template: str | None) -> dict[str, Any]:
    """The one place that decides whether prompts show the base's candidates: with ``fusion.base`` set the
    template is ``candidates`` unless one with ``{candidates}`` was given (an inherited template without them
    gives way: the candidates are what the fused recipe is about); without a base, a template that shows
    candidates is an error, since nothing provides them."""
    from rl4rec_core.policy.prompts import CANDIDATES_TEMPLATE, shows_candidates

    fused = settings.fusion.base != "none"
    shows = template is not None and shows_candidates(template)
    if fused and not shows:
        if settings.policy.prompt_template is not None:  # typed by the user: say so rather than override it
            raise ConfigError(f"--base {settings.fusion.base} shows the base's candidates in the prompt, but "
                              f"--prompt_template {settings.policy.prompt_template!r} has no {{candidates}}; "
                              f"drop it or use --prompt_template {CANDIDATES_TEMPLATE}")
        return {"prompt_template": CANDIDATES_TEMPLATE}
    if not fused and shows:
        raise ConfigError(f"prompt template {template!r} shows a base recommender's candidates but --base is "
                          "none; set --base sasrec (or echo+prior), or another --prompt_template")
    return {}


def _dummy(config: PolicyConfig, dataset):
    from rl4rec_core.policy.dummy import DummyRecPolicy

    return DummyRecPolicy.from_dataset(_union(dataset), config)


def _union(dataset):
    """A dataset, or for a run on several (a list) one whose items are all of theirs: the dummy policy's
    vocabulary then has the words of every dataset. Only text columns: a column one dataset lacks is empty."""
    if not isinstance(dataset, (list, tuple)):
        return dataset
    import types

    import pandas as pd

    items = pd.concat([ds.items.select_dtypes(exclude="number") for ds in dataset], ignore_index=True)
    return types.SimpleNamespace(items=items.fillna(""))


def _llm(config: PolicyConfig, dataset):
    from rl4rec_core.policy.rec_policy import RecPolicy

    return RecPolicy(config)


POLICY_BUILDERS: dict[str, Callable[[PolicyConfig, Any], Any]] = {"llm": _llm, "dummy": _dummy}


def build_policy(settings: Settings, dataset, device: str | None = None):
    """A fresh policy of the kind ``settings.policy.policy`` names, on ``device`` (default: the run's)."""
    builder = POLICY_BUILDERS.get(settings.policy.policy)
    if builder is None:
        raise ConfigError(f"unknown policy {settings.policy.policy!r}; choose one of {', '.join(POLICIES)}")
    return builder(policy_config(settings, device), dataset)
