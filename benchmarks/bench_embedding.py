"""Item-embedding throughput (items/s) of each installed backend on a prepared dataset's item texts.

    rl4rec data prepare --dataset ml-100k
    python benchmarks/bench_embedding.py [--dataset ml-100k] [--emb_model all-MiniLM-L6-v2] [--repeats 3]

Each backend is loaded once (load time reported separately), warmed up on a few texts, then times
``encode`` over all item texts ``--repeats`` times; the best run is reported (least disturbed by other
processes on a shared machine). Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from rl4rec_core.progress import quiet_when_piped
from rl4rec_core.settings import DEFAULT_DATASET, DEFAULT_EMB_MODEL


def bench(backend: str, model: str, texts: list[str], batch_size: int, repeats: int) -> dict:
    from rl4rec_core.embeddings.encoders import make_encoder

    t0 = time.perf_counter()
    enc = make_encoder(model, backend=backend)
    load_s = time.perf_counter() - t0
    enc.encode(texts[:32], batch_size=batch_size)  # warm-up: first-call allocations, lazy init
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        emb = enc.encode(texts, batch_size=batch_size)
        runs.append(time.perf_counter() - t0)
    best = min(runs)
    return {"backend": backend, "load_s": load_s, "best_s": best, "items_per_s": len(texts) / best, "dim": emb.shape[1], "emb": emb}


def main() -> None:
    quiet_when_piped()  # bars ("Loading weights", encoders) only on a terminal, never in a saved log
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=DEFAULT_DATASET)
    ap.add_argument("--emb_model", default=DEFAULT_EMB_MODEL)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", nargs="+", help="default: every installed backend")
    args = ap.parse_args()

    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.encoders import vllm_available
    from rl4rec_core.data.item_text import render_item_texts

    ds = load_dataset(args.dataset)
    texts = render_item_texts(ds.items, ds.meta.get("item_text_template", "auto"))
    backends = args.backends or (["sentence-transformers"] + (["vllm"] if vllm_available() else []))
    print(f"{args.dataset}: {len(texts)} item texts, model {args.emb_model}, batch {args.batch_size}, "
          f"best of {args.repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    results = []
    for backend in backends:
        r = bench(backend, args.emb_model, texts, args.batch_size, args.repeats)
        results.append(r)
        print(f"  {backend:<22} {r['items_per_s']:8.1f} items/s  ({r['best_s']:.2f} s for {len(texts)} items, "
              f"load {r['load_s']:.1f} s, dim {r['dim']})")
    if len(results) > 1:  # same model on two backends: their vectors should agree
        cos = (results[0]["emb"] * results[1]["emb"]).sum(dim=1)
        print(f"  cosine {results[0]['backend']} vs {results[1]['backend']}: min {cos.min():.4f}, mean {cos.mean():.4f}")


if __name__ == "__main__":  # vLLM spawns its engine process: keep this module import-safe
    main()
