"""Policies that turn a user's history into text: ``RecPolicy`` (an LLM) and ``DummyRecPolicy`` (no LLM).

Imported lazily, so using the dummy policy or the prompt templates never loads transformers.
"""

from __future__ import annotations

_EXPORTS = {
    "RecPolicy": "rl4rec_core.policy.rec_policy",
    "PolicyConfig": "rl4rec_core.policy.rec_policy",
    "Rollout": "rl4rec_core.policy.rollout",
    "DummyRecPolicy": "rl4rec_core.policy.dummy",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
