"""The A/B computation on hand-made ranks: differences, the bootstrap against a hand-written resampler,
win/tie/loss, head/tail and history segments, and the files of the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.evaluation import ab
from rl4rec_core.evaluation.ab_output import render_markdown, write_report

# four users; A's and B's 1-based target ranks
RANKS_A = [1, 2, 11, 3]
RANKS_B = [1, 1, 1, 20]
# NDCG@10 = 1 / log2(rank + 1) inside the top 10, else 0:
#   A: 1, 1/log2(3) = 0.63093, 0, 1/log2(4) = 0.5      B: 1, 1, 1, 0
#   A - B: 0, -0.36907, -1, +0.5 -> mean -0.21727; one win (user 3), one tie (user 0), two losses
NDCG_DIFF = np.array([0.0, 1 / math.log2(3) - 1, -1.0, 0.5])


def _table(ranks_a=RANKS_A, ranks_b=RANKS_B, lengths=(3, 6, 30, 120), targets=(0, 1, 2, 3)):
    head = np.array([True, False, False, False])
    return ab.user_table(np.arange(len(ranks_a)), [[9] * n for n in lengths], list(targets), ranks_a, ranks_b,
                         head), head


def _mirror_bootstrap(diff: np.ndarray, n: int, seed: int, confidence: float = 0.95, batch: int = 256):
    """scipy.stats.bootstrap(paired=True, method="percentile") written out: each resample draws U user
    indices with replacement from one seeded generator, 256 resamples per draw; the interval is the linear
    quantiles (1 - confidence) / 2 and 1 - that of the resampled means."""
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n, batch):
        idx = rng.integers(0, len(diff), (min(batch, n - start), len(diff)))
        means.append(diff[idx].mean(axis=-1))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(np.concatenate(means), [alpha, 1 - alpha])
    return float(lo), float(hi)


def test_differences_and_win_tie_loss_by_hand():
    table, head = _table()
    report = ab.ab_report(table, head, a="A", b="B", dataset="d", split="test", n_bootstrap=300, seed=1)
    ndcg, hit, mrr = (report.metric(m) for m in ("ndcg@10", "hit@10", "mrr"))
    assert ndcg.diff == pytest.approx(NDCG_DIFF.mean(), abs=1e-6) == pytest.approx(-0.217267, abs=1e-6)
    assert ndcg.mean_a == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 4, abs=1e-6) and ndcg.mean_b == 0.75
    # Hit@10: A 1 1 0 1, B 1 1 1 0 -> diff 0; MRR: A 1 1/2 1/11 1/3, B 1 1 1 1/20
    assert hit.diff == 0.0
    assert mrr.diff == pytest.approx((0 - 0.5 - 10 / 11 + (1 / 3 - 1 / 20)) / 4, abs=1e-6)
    assert (report.wins, report.ties, report.losses) == (1, 1, 2) and report.decided_by == "ndcg@10"


def test_bootstrap_matches_a_hand_written_resampler():
    got = ab.compare_ranks(RANKS_A, RANKS_B, ("ndcg@10",), n=700, seed=7)[0]
    lo, hi = _mirror_bootstrap(NDCG_DIFF, n=700, seed=7)
    assert (got.lo, got.hi) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
    assert got.lo < got.diff < got.hi
    lo90, hi90 = _mirror_bootstrap(NDCG_DIFF, n=700, seed=7, confidence=0.9)
    got90 = ab.compare_ranks(RANKS_A, RANKS_B, ("ndcg@10",), n=700, seed=7, confidence=0.9)[0]
    assert (got90.lo, got90.hi) == (pytest.approx(lo90, abs=1e-6), pytest.approx(hi90, abs=1e-6))


def test_bootstrap_of_two_users_by_hand():
    # diffs 1 and 0: a resample's mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so the 2.5% and 97.5%
    # quantiles of thousands of resamples are 0 and 1 (each end holds ~25% of them, far over 2.5%)
    d = ab.compare_ranks([1, 50], [50, 50], ("hit@10",), n=4000, seed=0)[0]
    assert (d.diff, d.lo, d.hi) == (0.5, 0.0, 1.0)


def test_identical_a_and_b_tie_everywhere():
    table, head = _table(ranks_a=RANKS_A, ranks_b=RANKS_A)
    report = ab.ab_report(table, head, a="x", b="x", dataset="d", split="valid", n_bootstrap=200)
    assert all(m.diff == m.lo == m.hi == 0.0 for m in report.metrics)  # the interval [0, 0] contains 0
    assert all(m.verdict == "no clear difference" for m in report.metrics)
    assert (report.wins, report.ties, report.losses) == (0, 4, 0)
    assert all(s.ties == s.users and s.diff == 0.0 for s in report.segments)


def test_head_items_by_hand():
    # counts [5, 3, 1, 1] over 10 interactions
    hist = [[0, 0, 0, 1], [0, 1, 2], [0, 1, 3]]
    assert ab.head_items(hist, 4, 0.2).tolist() == [True, False, False, False]  # 5 >= 2
    assert ab.head_items(hist, 4, 0.6).tolist() == [True, True, False, False]  # 5 + 3 >= 6
    # counts [2, 2, 1]: equal counts are taken in item order, so 30% (1.5 of 5) is item 0 alone
    assert ab.head_items([[0, 1], [0, 1, 2]], 3, 0.3).tolist() == [True, False, False]
    # an item nobody trained on is never head, even when the head holds every interaction
    assert ab.head_items([[0, 1]], 3, 1.0).tolist() == [True, True, False]
    with pytest.raises(ConfigError, match="head share"):
        ab.head_items(hist, 4, 0.0)


def test_segments_cover_every_user_once():
    assert [ab.history_bucket(n) for n in (1, 5, 6, 20, 21, 50, 51, 100, 101, 0)] == [
        "1-5", "1-5", "6-20", "6-20", "21-50", "21-50", "51-100", "51-100", "101+", "<1"]
    table, head = _table()
    segs = ab.ab_report(table, head, a="A", b="B", dataset="d", split="test", n_bootstrap=100).segments
    by_group: dict[str, list] = {}
    for s in segs:
        by_group.setdefault(s.group, []).append(s)
    # histories of 3, 6, 30 and 120 items; the empty 51-100 bucket is left out
    assert [s.name for s in by_group["history length"]] == ["1-5", "6-20", "21-50", "101+"]
    assert [(s.name, s.users) for s in by_group["target popularity"]] == [("head", 1), ("tail", 3)]
    for group in by_group.values():
        assert sum(s.users for s in group) == 4
        assert sum(s.wins + s.ties + s.losses for s in group) == 4
    # a one-user segment has no spread: its interval is its difference
    one = by_group["target popularity"][0]
    assert one.diff == one.lo == one.hi == 0.0


def test_report_files(tmp_path):
    table, head = _table()
    report = ab.ab_report(table, head, a="ckpt/final", b="popularity", dataset="d", split="test", n_bootstrap=100)
    text = render_markdown(report)
    assert "# Offline A/B: ckpt/final vs popularity" in text and "| ndcg@10 |" in text
    assert "win / tie / loss" in text and "1 of 4 items" in text and "![" in text
    files = write_report(report, tmp_path / "out")
    assert files["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = files["per_user"].read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("user_idx,history_len,target,head,ranks_a,ranks_b,ndcg@10_a")
    saved = json.loads(files["json"].read_text())
    assert saved["wins"] == 1 and saved["metrics"][0]["metric"] == "ndcg@10" and "per_user" not in saved
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temporary files


def test_bad_input():
    with pytest.raises(ConfigError, match="same non-empty users"):
        ab.compare_ranks([1, 2], [1])
    with pytest.raises(ConfigError, match="n_bootstrap"):
        ab.ab_report(*_table(), a="A", b="B", dataset="d", split="test", n_bootstrap=0)


def test_promotion_decides_on_the_same_interval():
    from flows.promotion import decide_promotion

    decision = decide_promotion(RANKS_A * 5, RANKS_B * 5, n_bootstrap=300, seed=3)
    d = ab.compare_ranks(RANKS_A * 5, RANKS_B * 5, ("ndcg@10",), n=300, seed=3)[0]
    assert (decision.diff_mean, decision.ci_low, decision.ci_high) == (d.diff, d.lo, d.hi)
    assert (decision.challenger_ndcg, decision.champion_ndcg) == (d.mean_a, d.mean_b)
