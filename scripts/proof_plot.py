"""Reward curve of a training_log.jsonl. usage: proof_plot.py training_log.jsonl OUT.png [TITLE]"""
import json, sys
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [json.loads(l) for l in open(sys.argv[1])]
s = [r["step"] for r in rows]
fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
ax[0].plot(s, [r["avg_reward"] for r in rows], "o-", label="avg reward (rank_pct)")
ax[0].fill_between(s, [r["min_reward"] for r in rows], [r["max_reward"] for r in rows], alpha=0.2, label="min-max")
ax[0].set_xlabel("step"); ax[0].set_ylabel("rank_pct reward"); ax[0].legend(fontsize=8); ax[0].set_title("reward per step")
ax[1].plot(s, [r["mean_rank"] for r in rows], "o-", color="C1"); ax[1].set_xlabel("step"); ax[1].set_ylabel("mean target rank (of 1682)")
ax[1].invert_yaxis(); ax[1].set_title("mean rank of target (lower is better)")
fig.suptitle(sys.argv[3] if len(sys.argv) > 3 else "SmolLM2-135M-Instruct GRPO on ML-100k", fontsize=9)
fig.tight_layout(); fig.savefig(sys.argv[2], dpi=110)
