"""GRPO diagnostics: values on hand-made groups, the zero-spread warning, and that they reach the run's log."""

from __future__ import annotations

import logging

import pytest
import torch

from rl4rec_core.training.diagnostics import (ZeroSpreadWarning, base_diagnostics, format_diagnostics,
                                              group_diagnostics, names, naming_diagnostics, normalise_title)


def test_group_diagnostics_on_hand_made_groups():
    # three users, two samples each: no spread, spread 1 (std .5), spread 0.2 (std .1)
    d = group_diagnostics(torch.tensor([0.3, 0.3, 0.0, 1.0, 0.4, 0.6]), group_size=2)
    assert d["frac_zero_spread"] == pytest.approx(1 / 3)
    assert d["reward_std_within"] == pytest.approx((0.0 + 0.5 + 0.1) / 3)
    assert group_diagnostics(torch.ones(8), 4) == {"frac_zero_spread": 1.0, "reward_std_within": 0.0}


def test_titles_are_matched_normalised_as_whole_words():
    assert normalise_title("Godfather, The (1972)") == "the godfather"
    assert names('The user will like "The Godfather" (1972).', "Godfather, The (1972)")
    assert names("Toy Story (1995). Genres: Animation", "Toy Story (1995)")
    assert not names("Toy Story 2", "Toy Story 20") and not names("Alienation", "Alien")
    assert not names("anything", "")


def test_naming_diagnostics_count_texts_per_user():
    texts = ["Alien", "Brazil", "Heat", "nothing at all"]  # two users, two samples each
    d = naming_diagnostics(texts, 2, ["Brazil (1985)", "Fargo"], [["Alien (1979)", "Brazil (1985)"], ["Heat"]])
    assert d == {"names_target": 0.25, "names_candidate": 0.75}
    assert naming_diagnostics(texts, 2, ["Brazil", "Fargo"]) == {"names_target": 0.25}  # no candidates shown


def test_gain_over_the_base():
    d = base_diagnostics(torch.tensor([1, 5, 3, 10]), torch.tensor([2, 5, 1, 20]))
    assert d == {"beats_base": 0.5, "rank_gain": pytest.approx((1 + 0 - 2 + 10) / 4)}
    assert base_diagnostics(torch.tensor([1]), None) == {}


def test_zero_spread_warning_fires_above_half_once_per_n_steps(caplog):
    warn = ZeroSpreadWarning(every=10)
    with caplog.at_level(logging.WARNING, logger="rl4rec_core.training.diagnostics"):
        fired = [warn.check(step, frac) for step, frac in
                 [(0, 0.5), (1, 0.75), (2, 0.9), (10, 0.2), (11, 0.6), (12, 1.0)]]
    assert fired == [False, True, False, False, True, False]
    assert len(caplog.records) == 2 and "75% of the groups" in caplog.records[0].getMessage()


def test_console_line_holds_the_diagnostics():
    line = format_diagnostics({"frac_zero_spread": 0.25, "reward_std_within": 0.0123, "gen_tokens": 8.0,
                               "entropy": 2.1, "kl": 0.001, "names_candidate": 0.8, "names_target": 0.1})
    assert line == "       zero-spread 25% | within-std 0.0123 | len 8.0 | entropy 2.10 | kl 0.0010 | cand 80% | target 10%"
