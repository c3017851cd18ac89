"""Plot a training_log.jsonl: reward per step with a moving average, and seconds per step by phase.

    python scripts/proof_plot.py CHECKPOINT_DIR/training_log.jsonl docs/proof_reward_curve.png [--window 10]

Each step draws different users, so the per-step reward mostly shows which users were drawn; the
moving average shows the trend.
"""

from __future__ import annotations

import argparse

import numpy as np

from tasks.training_callback import read_training_log


def moving_average(values: list[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if len(v) < window:
        return v
    return np.convolve(v, np.ones(window) / window, mode="valid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("out_png")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--title", default="SmolLM2-135M-Instruct, GRPO on MovieLens-100k (2 CPU cores)")
    args = ap.parse_args()
    rows = [r for r in read_training_log(args.log) if "avg_reward" in r]
    if not rows:
        raise SystemExit(f"no steps with avg_reward in {args.log}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in rows])
    w = min(args.window, len(rows))
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    ax[0].plot(steps, [r["avg_reward"] for r in rows], ".", alpha=0.35, label="avg reward per step")
    ax[0].plot(steps[w - 1:], moving_average([r["avg_reward"] for r in rows], w), lw=2, label=f"{w}-step mean")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("reward")
    ax[0].set_title("reward")
    ax[0].legend(fontsize=8)
    phases = [k for k in ("time_generate", "time_reward", "time_update") if k in rows[0]]
    bottom = np.zeros(len(rows))
    for k in phases:
        v = np.array([r.get(k, 0.0) for r in rows])
        ax[1].bar(steps, v, bottom=bottom, width=1.0, label=k.removeprefix("time_"))
        bottom += v
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("seconds")
    ax[1].set_title("time per step, by phase")
    ax[1].legend(fontsize=8)
    fig.suptitle(args.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out_png, dpi=110)
    print(f"wrote {args.out_png}")


if __name__ == "__main__":
    main()
