"""The plot of a training run: reward per step from ``training_log.jsonl``, with the loss or the time per
step beside it. Used for the reward-curve artifact of an MLflow run and for the PNGs in ``docs/``.

matplotlib draws with the Agg backend: no display is needed, so it also works in a Ray worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rl4rec_core.errors import ConfigError
from rl4rec_core.checkpoints import TrainingLog

# the trainer's per-step timings, stacked in the order a step runs them
PHASES = ("time_generate", "time_reward", "time_update")
PANELS = ("loss", "time")


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Means of each ``window`` consecutive values (``len - window + 1`` of them); the values when fewer."""
    v = np.asarray(values, dtype=float)
    if len(v) < window:
        return v
    return np.convolve(v, np.ones(window) / window, mode="valid")


def plot_training_log(
    log_path: str | Path,
    out_png: str | Path,
    *,
    reward_keys: Sequence[str] | None = None,
    window: int = 1,
    panels: Sequence[str] = ("loss",),
    title: str | None = None,
    dpi: int = 100,
) -> Path | None:
    """:func:`training_figure` saved as ``out_png``; ``out_png``, or None when no step has a reward."""
    fig = training_figure(log_path, reward_keys=reward_keys, window=window, panels=panels, title=title)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return out_png


def training_figure(
    log_path: str | Path,
    *,
    reward_keys: Sequence[str] | None = None,
    window: int = 1,
    panels: Sequence[str] = ("loss",),
    title: str | None = None,
):
    """Reward against step (left) and, beside it, each of ``panels`` the log has data for, as a matplotlib
    ``Figure`` (the caller saves or logs it, then closes it with ``plt.close(fig)``).

    Args:
        reward_keys: the fields to draw; default every numeric field whose name contains ``reward``,
            except the phase times (``time_reward`` is seconds, drawn in the time panel).
        window: above 1, each reward is drawn as points plus its ``window``-step moving mean, because
            each step draws different users and the raw curve mostly shows which users were drawn.
        panels: ``loss`` (the loss per step) and/or ``time`` (seconds per step, stacked by phase).
    Returns:
        the figure, or None when no step has a reward.
    """
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise ConfigError(f"unknown plot panel(s) {unknown}; use any of {', '.join(PANELS)}")
    records = [r for r in TrainingLog(Path(log_path)).read() if "step" in r]
    keys = list(reward_keys or reward_series(records))
    if not any(isinstance(r.get(k), (int, float)) for r in records for k in keys):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = [p for p in panels if _has_panel(records, p)]
    fig, axes = plt.subplots(1, 1 + len(extra), figsize=(6 + 5 * len(extra), 4), squeeze=False)
    _reward_panel(axes[0][0], records, keys, window)
    for ax, panel in zip(axes[0][1:], extra):
        (_loss_panel if panel == "loss" else _time_panel)(ax, records)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def reward_series(records: Sequence[dict]) -> list[str]:
    """The numeric fields named like a reward, except the phase times (``time_reward`` is seconds)."""
    return sorted({k for r in records for k, v in r.items()
                   if "reward" in k and k not in PHASES and isinstance(v, (int, float))})


def _has_panel(records: list[dict], panel: str) -> bool:
    if panel == "loss":
        return any(isinstance(r.get("loss"), (int, float)) for r in records)
    return any(k in r for r in records for k in PHASES)


def _reward_panel(ax, records: list[dict], keys: list[str], window: int) -> None:
    for k in keys:
        pts = [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float))]
        if not pts:
            continue
        steps, values = np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)
        w = min(window, len(values))
        if w > 1:
            (dots,) = ax.plot(steps, values, ".", alpha=0.35, label=k)
            ax.plot(steps[w - 1:], moving_average(values, w), lw=2, color=dots.get_color(),
                    label=f"{k}, {w}-step mean")
        else:
            ax.plot(steps, values, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title("reward per step")
    ax.legend(fontsize=8)


def _loss_panel(ax, records: list[dict]) -> None:
    pts = [(r["step"], r["loss"]) for r in records if isinstance(r.get("loss"), (int, float))]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color="tab:red")
    ax.set_xlabel("step")
    ax.set_title("loss")


def _time_panel(ax, records: list[dict]) -> None:
    steps = np.array([r["step"] for r in records])
    bottom = np.zeros(len(records))
    for k in (p for p in PHASES if any(p in r for r in records)):
        v = np.array([r.get(k, 0.0) for r in records], dtype=float)
        ax.bar(steps, v, bottom=bottom, width=1.0, label=k.removeprefix("time_"))
        bottom += v
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    ax.set_title("time per step, by phase")
    ax.legend(fontsize=8)
