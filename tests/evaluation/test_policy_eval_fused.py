"""Evaluating a policy of the fused recipe: candidates in the prompt from the service, the text ranked by the
scorer asked for. The service's fused channel is a stand-in (tests/helpers/fused_source.py) over a real service."""

from __future__ import annotations

import pytest

from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.evaluation.policy_eval import evaluate_policy, generate_split_texts
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.settings import FusionSettings, Settings
from tests.helpers.fused_source import FusedStandIn

FUSION = FusionSettings(base="sasrec", num_candidates=5)


def dummy(tiny):
    return build_policy(Settings.of(dataset_name=tiny.name, policy="dummy", base="sasrec", num_candidates=5), tiny)


def test_greedy_texts_are_among_each_users_candidates(tiny, service):
    source = FusedStandIn(service, tiny)
    texts = generate_split_texts(tiny, dummy(tiny), "valid", batch_size=7, service=source, fusion=FUSION)
    asked = list(source.candidate_calls)
    shown = [c for _, hs, k in asked for c in source.candidates(tiny.name, hs, k).tolist()]
    assert len(texts) == len(tiny.split("valid").histories) == len(shown)
    assert all(t in [tiny.item_titles[j] for j in row] for t, row in zip(texts, shown))


def test_evaluate_asks_the_scorer_and_needs_candidates_with_a_base(tiny, service):
    source = FusedStandIn(service, tiny)
    summary, ranks = evaluate_policy(tiny, dummy(tiny), "valid", service=source, fusion=FUSION, scorer="fused")
    assert len(ranks) == len(tiny.split("valid").histories) and 0 <= summary["ndcg@10"] <= 1
    assert {c["scorer"] for c in source.reward_calls} == {"fused"} and source.candidate_calls
    # a service started without a base: one line naming the fix
    with pytest.raises(Rl4recError, match="base's candidates.*--base") as e:
        evaluate_policy(tiny, dummy(tiny), "valid", service=service, fusion=FUSION)
    assert "\n" not in str(e.value)
