"""Paired bootstrap (users resampled) of trained - untrained from two proof_eval.py outputs.
usage: proof_compare.py TRAINED.pt UNTRAINED.pt OUT.json"""
import json, sys
import torch
from rl4rec_core import metrics
from rl4rec_core.policy_eval import paired_bootstrap
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
out = {"users": len(a["ranks"]), "trained": a["metrics"], "untrained": b["metrics"],
       "eval_s": {"trained": a["eval_s"], "untrained": b["eval_s"]},
       "examples": {"trained": a["examples"], "untrained": b["examples"]}}
for key, fn in (("ndcg@10", lambda r: metrics.ndcg_at_k(r, 10)), ("hit@10", lambda r: metrics.hit_at_k(r, 10)),
                ("mrr", metrics.reciprocal_rank), ("rank_pct", lambda r: 1 - (r.float() - 1) / 1681)):
    mean, lo, hi = paired_bootstrap(fn(a["ranks"]), fn(b["ranks"]), n=2000, seed=0)
    out[f"diff_{key}"] = {"mean": mean, "lo95": lo, "hi95": hi}
out["mean_rank"] = {"trained": float(a["ranks"].float().mean()), "untrained": float(b["ranks"].float().mean())}
out["median_rank"] = {"trained": float(a["ranks"].float().median()), "untrained": float(b["ranks"].float().median())}
print(json.dumps(out, indent=1)); json.dump(out, open(sys.argv[3], "w"), indent=1)
