"""Evaluate one policy on a seeded subset of ml-100k validation users; save per-user ranks.
usage: eval_one.py untrained OUT.pt MAX_USERS   |   eval_one.py CHECKPOINT OUT.pt MAX_USERS"""
import json, sys, time
import torch
from rl4rec_core.data import load_dataset
from rl4rec_core.policy_eval import evaluate_policy, load_policy
from rl4rec_core.retrieval import RetrievalService

which, out, max_users = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = load_dataset("ml-100k")
service = RetrievalService(datasets=("ml-100k",), backend="sentence-transformers")
if which == "untrained":
    from rl4rec_core.policy.rec_policy import RecPolicy
    # same generation config as the trained run's policy.json (item_noun movie, 24 new tokens, next_item template)
    pol = RecPolicy(model_name="smollm2-135m-instruct", item_noun="movie", max_new_tokens=24, seed=0)
else:
    pol = load_policy(which, trained=True)
print("config", json.dumps({k: v for k, v in pol.config.to_dict().items() if k != "algo"}), flush=True)
t = time.time()
m, r = evaluate_policy(ds, pol, split="valid", service=service, max_users=max_users, seed=0, batch_size=40, progress=True)
dt = time.time() - t
v = ds.split("valid")
ex = pol.generate(pol.build_prompts([[ds.item_titles[i] for i in v.histories[u]] for u in (0, 1, 2)]), greedy=True)
torch.save({"ranks": r, "metrics": m, "eval_s": dt, "examples": ex}, out)
print(json.dumps({"metrics": m, "eval_s": dt, "examples": ex}, indent=1), flush=True)
