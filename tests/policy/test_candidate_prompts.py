"""The candidates prompt (the fused recipe): the base's top-K as numbered titles, chosen by policy_config."""

from __future__ import annotations

import re

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.prompts import CANDIDATES_TEMPLATE, build_prompts, render_prompt
from rl4rec_core.policy.registry import policy_config
from rl4rec_core.settings import Settings
from tests.helpers.tiny_lm import make_tiny_tokenizer

HISTORY = [f"Movie {i} ({1990 + i})" for i in range(12)]
CANDIDATES = ["Alien (1979)", "Brazil (1985)", "Heat (1995)"]


def test_candidates_prompt_numbers_exactly_the_given_titles_after_the_recent_history():
    text = render_prompt(HISTORY, CANDIDATES_TEMPLATE, history_len=4, item_noun="movie", candidates=CANDIDATES)
    history, shown = text.split("Candidates for the next movie:\n")
    assert "1. Movie 8 (1998)" in history and "4. Movie 11 (2001)" in history and "Movie 7" not in history
    listed = re.findall(r"^(\d+)\. (.+)$", shown.split("\n\n")[0], flags=re.M)
    assert listed == [("1", "Alien (1979)"), ("2", "Brazil (1985)"), ("3", "Heat (1995)")]
    assert text.endswith("Answer with its title only.")


def test_build_prompts_passes_candidates_per_user_and_keeps_the_plain_path():
    tok = make_tiny_tokenizer(chat=False)
    a, b = build_prompts([HISTORY, HISTORY[:2]], tok, CANDIDATES_TEMPLATE, candidates=[CANDIDATES, ["Fargo"]])
    assert "3. Heat (1995)" in a and "1. Fargo" in b and "Heat" not in b
    assert build_prompts([HISTORY], tok, "plain") == [render_prompt(HISTORY, "plain")]


def test_candidates_and_templates_must_agree():
    with pytest.raises(ConfigError, match="none were given"):
        render_prompt(HISTORY, CANDIDATES_TEMPLATE)
    with pytest.raises(ConfigError, match="does not show them"):
        render_prompt(HISTORY, "next_item", candidates=CANDIDATES)
    with pytest.raises(ConfigError, match="one candidate list per user"):
        build_prompts([HISTORY, HISTORY], None, CANDIDATES_TEMPLATE, candidates=[CANDIDATES])


def test_policy_config_picks_the_candidates_template_when_a_base_is_set():
    assert policy_config(Settings.of(dataset_name="ml-100k")).policy.prompt_template is None
    fused = policy_config(Settings.of(dataset_name="ml-100k", base="sasrec")).policy
    assert fused.prompt_template == CANDIDATES_TEMPLATE
    custom = "Seen: {history}. Pick one of {candidates}:"
    assert policy_config(Settings.of(dataset_name="ml-100k", base="sasrec", prompt_template=custom)).policy.prompt_template == custom
    with pytest.raises(ConfigError, match="has no {candidates}"):
        policy_config(Settings.of(dataset_name="ml-100k", base="sasrec", prompt_template="plain"))
    with pytest.raises(ConfigError, match="--base is none"):
        policy_config(Settings.of(dataset_name="ml-100k", prompt_template=CANDIDATES_TEMPLATE))
