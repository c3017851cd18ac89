"""The A/B report as files: markdown (what a reviewer reads before trusting or promoting either side), the
PNG (``ab_plot.py``), the per-user table as CSV and the figures as JSON."""

from __future__ import annotations

import csv
from pathlib import Path

from rl4rec_core.evaluation.ab import HISTORY_BUCKETS, ABReport


def _signed(x: float) -> str:
    return f"{x:+.4f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{lo:+.4f}, {hi:+.4f}]"


def _metric_table(report: ABReport) -> list[str]:
    conf = f"{report.confidence:.0%}"
    lines = [f"| metric | A | B | A − B | {conf} interval | verdict |", "|---|---:|---:|---:|---|---|"]
    for m in report.metrics:
        lines.append(f"| {m.metric} | {m.mean_a:.4f} | {m.mean_b:.4f} | {_signed(m.diff)} | "
                     f"{_interval(m.lo, m.hi)} | {m.verdict} |")
    return lines


def _segment_table(report: ABReport) -> list[str]:
    lines = [f"| segment | users | A | B | A − B | {report.confidence:.0%} interval | win / tie / loss |",
             "|---|---:|---:|---:|---:|---|---|"]
    for s in report.segments:
        label = f"history {s.name}" if s.group == "history length" else f"target in {s.name}"
        lines.append(f"| {label} | {s.users} | {s.mean_a:.4f} | {s.mean_b:.4f} | {_signed(s.diff)} | "
                     f"{_interval(s.lo, s.hi)} | {s.wins} / {s.ties} / {s.losses} |")
    return lines


def _definitions(report: ABReport) -> list[str]:
    buckets = ", ".join(f"{lo}+" if hi is None else f"{lo}-{hi}" for lo, hi in HISTORY_BUCKETS)
    return [
        "## Definitions",
        "",
        (f"- **A − B**: per user, the metric of A minus that of B, averaged over the {report.users} users; the "
        f"interval is a {report.confidence:.0%} paired percentile bootstrap ({report.n_bootstrap} resamples of "
        f"the users, seed {report.seed}). An interval above 0 says A is better, below 0 that B is."),
        (f"- **win / tie / loss**: per user on {report.decided_by}: A's value above, equal to or below B's "
        "(two misses of the top 10 are a tie)."),
        f"- **history**: items in the user's history for the {report.split} split, in buckets {buckets}.",
        (f"- **head / tail**: items sorted by how often they occur in the training histories (most first, ties by "
        f"item index); the head is the shortest prefix holding at least {report.head_share:.0%} of all training "
        f"interactions — here {report.head_items} of {report.num_items} items. A user is in *head* when the "
        "target item is a head item, else in *tail*."),
        "- Ranks are full rankings over every item with the user's history masked and pessimistic ties.",
    ]


def render_markdown(report: ABReport, figure: str | None = "ab.png") -> str:
    """The report; ``figure`` is the PNG's path relative to the markdown file (None: no image)."""
    decided = report.metric(report.decided_by)
    lines = [
        f"# Offline A/B: {report.a} vs {report.b}",
        "",
        f"- **A**: `{report.a}`",
        f"- **B**: `{report.b}`",
        f"- **data**: {report.dataset}, {report.split} split, the same {report.users} users for both",
        "",
        (f"**{report.decided_by}: A − B = {_signed(decided.diff)} {_interval(decided.lo, decided.hi)} "
        f"({decided.verdict}); per user A wins {report.wins}, ties {report.ties}, loses {report.losses}.**"),
        "",
        *_metric_table(report),
        "",
        f"## Segments ({report.decided_by})",
        "",
        *_segment_table(report),
        "",
    ]
    if figure:
        lines += [f"![difference distribution and metrics]({figure})", ""]
    return "\n".join(lines + _definitions(report)) + "\n"


def write_report(report: ABReport, out: str | Path) -> dict[str, Path]:
    """report.md, ab.png, per_user.csv and ab.json in ``out`` (each written atomically); name -> path."""
    from rl4rec_core.evaluation.ab_plot import write_ab_figure
    from rl4rec_core.io import atomic_path, write_json

    out = Path(out)
    files = {"report": out / "report.md", "figure": out / "ab.png", "per_user": out / "per_user.csv",
             "json": out / "ab.json"}
    with atomic_path(files["report"]) as tmp:
        tmp.write_text(render_markdown(report, figure=files["figure"].name))
    write_ab_figure(report, files["figure"])
    rows = report.per_user.rows() if report.per_user is not None else []
    with atomic_path(files["per_user"]) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    write_json(files["json"], report.to_dict())
    return files
