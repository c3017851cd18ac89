"""Build the policy a ``TrainConfig`` asks for (dummy or LLM), in one place for the CLI and the flows."""

from __future__ import annotations

from typing import Any

from rl4rec_core.training.algorithms import AlgoConfig
from rl4rec_core.training.config import TrainConfig

# the dummy policy's logits move in whole units, an LLM's weights in tiny steps
DUMMY_LEARNING_RATE = 0.05
LLM_LEARNING_RATE = 1e-5
# a policy started from another one keeps the prompt it was trained with, unless told otherwise
INHERITED_FIELDS = ("prompt_template", "history_len", "response_prefix", "system_prompt", "use_chat_template",
                    "item_noun", "max_prompt_tokens")


def algo_config(cfg: TrainConfig, **overrides: Any) -> AlgoConfig:
    return AlgoConfig(algorithm=cfg.algorithm, group_size=cfg.group_size, kl_coef=cfg.kl_coef, **overrides)


def build_policy(cfg: TrainConfig, dataset, device: str = "cpu", algo_overrides: dict | None = None, **llm_kwargs):
    """A fresh policy for ``cfg``: ``DummyRecPolicy`` when ``cfg.use_dummy``, else ``RecPolicy``.

    ``llm_kwargs`` go to ``RecPolicy`` (e.g. ``max_new_tokens``, ``temperature``).
    """
    algo = algo_config(cfg, **(algo_overrides or {}))
    if cfg.use_dummy:
        from rl4rec_core.policy.dummy import DummyRecPolicy

        return DummyRecPolicy.from_dataset(
            dataset, learning_rate=cfg.learning_rate or DUMMY_LEARNING_RATE, algo=algo, seed=cfg.seed
        )
    from rl4rec_core.policy.prompts import item_noun_for
    from rl4rec_core.policy.rec_policy import RecPolicy

    if cfg.init_from:
        from rl4rec_core.policy.warm_start import read_init_config

        start = read_init_config(cfg.init_from)
        for name in INHERITED_FIELDS:
            if name in start:
                llm_kwargs.setdefault(name, start[name])
        llm_kwargs["init_from"] = cfg.init_from
    # small models need the domain word: SmolLM2 names real films for "movie", rambles for "item"
    llm_kwargs.setdefault("item_noun", item_noun_for(cfg.dataset_name))
    return RecPolicy(
        model_name=cfg.policy_model,
        device=device,
        lora=cfg.lora,
        learning_rate=cfg.learning_rate or LLM_LEARNING_RATE,
        algo=algo,
        seed=cfg.seed,
        **llm_kwargs,
    )
