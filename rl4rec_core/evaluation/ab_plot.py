"""The A/B figure: how the per-user differences are spread, the metric means of A and B, and every
difference (metrics, then segments) with its bootstrap interval. matplotlib's Agg backend: no display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rl4rec_core.errors import ConfigError
from rl4rec_core.evaluation.ab import DECIDING_METRIC, ABReport, per_user_values
from rl4rec_core.io import atomic_path


def ab_figure(report: ABReport):
    """Three panels as a matplotlib ``Figure`` (the caller saves and closes it)."""
    if report.per_user is None:
        raise ConfigError("the A/B figure needs the report's per-user table (ab_report keeps it)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, bars, diffs) = plt.subplots(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    _histogram(hist, report)
    _means(bars, report)
    _intervals(diffs, report)
    fig.suptitle(f"{report.a} (A) vs {report.b} (B) · {report.dataset} {report.split} · {report.users} users",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _histogram(ax, report: ABReport) -> None:
    t = report.per_user
    d = per_user_values(t.ranks_a, (DECIDING_METRIC,))[DECIDING_METRIC] - \
        per_user_values(t.ranks_b, (DECIDING_METRIC,))[DECIDING_METRIC]
    # most users tie at exactly 0 (both miss the top 10); a centred bin keeps that spike readable
    ax.hist(d, bins=np.linspace(-1.05, 1.05, 22), color="tab:blue", alpha=0.8)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(d.mean(), color="tab:red", lw=1.5, label=f"mean {d.mean():+.4f}")
    ax.set_xlabel(f"{DECIDING_METRIC}: A − B per user")
    ax.set_ylabel("users")
    ax.set_title(f"wins {report.wins} · ties {report.ties} · losses {report.losses}")
    ax.legend(fontsize=8)


def _means(ax, report: ABReport) -> None:
    x = np.arange(len(report.metrics))
    ax.bar(x - 0.2, [m.mean_a for m in report.metrics], 0.4, label=f"A: {report.a}", color="tab:blue")
    ax.bar(x + 0.2, [m.mean_b for m in report.metrics], 0.4, label=f"B: {report.b}", color="tab:orange")
    ax.set_xticks(x, [m.metric for m in report.metrics])
    ax.set_title("mean over users")
    ax.legend(fontsize=8)


def _intervals(ax, report: ABReport) -> None:
    rows = [(m.metric, m.diff, m.lo, m.hi) for m in report.metrics]
    rows += [((f"{DECIDING_METRIC} · {'history ' if s.group == 'history length' else 'target '}{s.name} "
              f"({s.users})"), s.diff, s.lo, s.hi) for s in report.segments]
    y = np.arange(len(rows))[::-1]
    mean = np.array([r[1] for r in rows])
    err = np.array([[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]])
    ax.errorbar(mean, y, xerr=err, fmt="o", color="tab:green", capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel(f"A − B, {report.confidence:.0%} bootstrap interval")
    ax.set_title("differences")


def write_ab_figure(report: ABReport, path: str | Path, dpi: int = 100) -> Path:
    """The figure saved as a PNG at ``path`` (atomically: a reader never sees half a file)."""
    import matplotlib.pyplot as plt

    fig = ab_figure(report)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)
