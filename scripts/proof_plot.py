"""Plot a training_log.jsonl: reward per step with a moving average, and seconds per step by phase.

    python scripts/proof_plot.py CHECKPOINT_DIR/training_log.jsonl docs/proof_reward_curve.png [--window 10]

Each step draws different users, so the per-step reward mostly shows which users were drawn; the
moving average shows the trend.
"""

from __future__ import annotations

import argparse

from rl4rec_core.training.plots import plot_training_log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("out_png")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--title", default="SmolLM2-135M-Instruct, GRPO on MovieLens-100k (2 CPU cores)")
    args = ap.parse_args()
    png = plot_training_log(args.log, args.out_png, reward_keys=["avg_reward"], window=args.window,
                            panels=("time",), title=args.title, dpi=110)
    if png is None:
        raise SystemExit(f"no steps with avg_reward in {args.log}")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
