"""Paired comparisons: hand-checked differences, intervals, and the errors for unpaired input."""

from __future__ import annotations

import math

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.evaluation.bootstrap import format_intervals, paired_intervals


def test_constant_differences_have_a_point_interval():
    # a ranks every target first, b second: NDCG@10 1 - 1/log2(3) = 0.36907, MRR 1 - 1/2, Hit@10 equal
    rows = paired_intervals({"a": [1, 1, 1], "b": [2, 2, 2]}, [("a", "b")])
    got = {r["metric"]: r for r in rows}
    assert got["ndcg@10"]["diff"] == pytest.approx(1 - 1 / math.log2(3))
    assert got["ndcg@10"]["lo"] == pytest.approx(got["ndcg@10"]["hi"])
    assert got["mrr"]["diff"] == pytest.approx(0.5) and got["hit@10"]["diff"] == 0
    assert "above 0" in format_intervals(rows) and "includes 0" in format_intervals(rows)


def test_noisy_differences_straddle_zero_and_unpaired_input_is_refused():
    rows = paired_intervals({"a": [1, 50, 1, 50], "b": [50, 1, 50, 1]}, [("a", "b")], compared=("ndcg@10",))
    assert rows[0]["lo"] < 0 < rows[0]["hi"] and rows[0]["users"] == 4
    with pytest.raises(ConfigError, match="different users"):
        paired_intervals({"a": [1, 2], "b": [1]}, [("a", "b")])
    with pytest.raises(ConfigError, match="no per-user ranks"):
        paired_intervals({"a": [1]}, [("a", "c")])
