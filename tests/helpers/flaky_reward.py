"""A custom reward (by dotted path ``tests.helpers.flaky_reward:fails_on_third_call``) that breaks mid-training, so
tests can see what a task failure leaves behind. Counted per process (the retrieval actor's)."""

from __future__ import annotations

import torch

CALLS = {"n": 0}


def fails_on_third_call(*, ranks, **_):
    CALLS["n"] += 1
    if CALLS["n"] >= 3:
        raise RuntimeError("flaky_reward: the reward backend went away (test failure on call 3)")
    return (ranks <= 10).float() / torch.log2(ranks.float() + 1)
