"""Benchmark the retrieval actor: full-matrix path vs in-actor rewards, and chunked vs bare scoring.

Not a test. Run from the repository root (needs ~2 GB free RAM per 1M items and disk for the file):

    python benchmarks/bench_retrieval.py --sizes 1682 100000 1000000 \
        --out docs/retrieval_benchmark.md

Part 1 (through a real Ray actor holding N synthetic items, dim 384, random unit rows, loaded from
an embedding file like ``rl4rec serve`` does; the real MiniLM encodes the 16 texts):
  * full-matrix path — ``calculate_reward`` returns ``[B, N]``; the client masks histories and
    ranks (what the original did);
  * in-actor path — ``compute_rewards`` returns only ``rewards [B]`` and ``ranks [B]``.
Part 2 (in this process, same item matrix, query vectors fixed so only scoring is timed):
  chunked ``scoring.chunked_ranks`` vs a bare ``q @ items.T`` + ``metrics.target_ranks``; time and
  peak RSS growth of each over the item matrix (``ru_maxrss``, one fresh process per size, chunked
  measured first so the bare path's larger peak cannot hide it); timings interleave the two paths.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl4rec_core import metrics  # noqa: E402
from rl4rec_core.progress import quiet_when_piped  # noqa: E402
from rl4rec_core.retrieval import scoring  # noqa: E402
from rl4rec_core.settings import RetrievalSettings  # noqa: E402
from rl4rec_core.settings import DEFAULT_EMB_MODEL  # noqa: E402

TEXTS = [
    "a light-hearted animated comedy for the whole family",
    "a gritty crime thriller set in Los Angeles",
    "an epic space opera with rebels and an evil empire",
    "a romantic comedy about two strangers in Seattle",
    "a slasher horror film with a masked killer",
    "a war drama about soldiers in Vietnam",
    "a musical about a family in Austria",
    "a documentary about basketball",
    "a science fiction film about time travel",
    "a western about a lone gunslinger",
    "a heist movie with a clever twist",
    "a coming-of-age story at a high school",
    "an animated film about a lion cub",
    "a courtroom drama about a murder trial",
    "a spy thriller with car chases",
    "a quiet drama about a farmer and his pig",
]


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def synthetic_items(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """``[n, dim]`` random unit rows, filled in blocks so building it never needs a second copy."""
    g = torch.Generator().manual_seed(seed)
    items = torch.empty(n, dim)
    # small blocks: the set-up peak must stay below what the scoring paths add on top of the matrix
    for start, stop in scoring.chunks(n, 2_048):
        block = torch.randn(stop - start, dim, generator=g)
        items[start:stop] = block / block.norm(dim=1, keepdim=True)
    return items


def batch(n: int, b: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(n, (b,), generator=g)
    histories = [torch.randint(n, (20,), generator=g).tolist() for _ in range(b)]
    return targets, histories


def timed_pair(fa, fb, repeats: int):
    """Median seconds of ``fa`` and ``fb`` called alternately, each with its last result."""
    fa(), fb()
    ta, tb, ra, rb = [], [], None, None
    for _ in range(repeats):
        t = time.perf_counter()
        ra = fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        rb = fb()
        tb.append(time.perf_counter() - t)
    return (statistics.median(ta), ra), (statistics.median(tb), rb)


def bench_actor(n: int, dim: int, b: int, repeats: int, chunk: int) -> dict:
    from rl4rec_core.retrieval import RetrievalClient, launch_retrieval_actor, remove_retrieval_actor

    name = f"bench-{n}"
    with tempfile.TemporaryDirectory(prefix="r4r-bench") as tmp:
        os.environ["RL4REC_EMB_DIR"] = tmp
        items = synthetic_items(n, dim)
        write_embeddings(name, items)
        del items  # the actor loads its own copy from the file
        retrieval = RetrievalSettings(actor_name=name, emb_backend="sentence-transformers", chunk_size=chunk)
        actor = launch_retrieval_actor(retrieval, [name], timeout_s=900)
        client = RetrievalClient(actor, name=name)
        texts = TEXTS[:b]
        targets, histories = batch(n, b)

        def full_path():
            scores = client.calculate_reward(texts, name)  # [B, N] crosses the object store
            ranks = metrics.target_ranks(scores, targets, histories)
            return scores, metrics.ndcg_at_k(ranks, 10)

        def actor_path():
            return client.compute_rewards(texts, name, targets.tolist(), histories, reward="ndcg@10")

        # interleaved, so load from other jobs on a shared machine hits both paths alike
        (t_full, (scores, _)), (t_act, rb) = timed_pair(full_path, actor_path, repeats)
        mismatch = int((metrics.target_ranks(scores, targets, histories) != rb.ranks).sum())
        out = {
            "n": n,
            "full_s": t_full,
            "actor_s": t_act,
            "full_bytes": len(pickle.dumps(scores)),
            "actor_bytes": len(pickle.dumps(rb)),
            "full_rps": b / t_full,
            "actor_rps": b / t_act,
            "rank_mismatches": mismatch,
        }
        del scores
        remove_retrieval_actor(name)
    return out


def write_embeddings(dataset: str, items: torch.Tensor) -> None:
    """The embedding file + sidecar ``rl4rec embed`` would write (model: the packaged MiniLM)."""
    from rl4rec_core.embeddings.encoders import canonical_model_name, short_name
    from rl4rec_core.io import atomic_path, write_json
    from rl4rec_core.embeddings.files import embedding_path, sidecar_path

    path = embedding_path(dataset, "item", DEFAULT_EMB_MODEL)
    with atomic_path(path) as tmp:
        torch.save(items, tmp)
    write_json(
        sidecar_path(path),
        {
            "dataset": dataset,
            "emb_type": "item",
            "model_name": canonical_model_name(DEFAULT_EMB_MODEL),
            "short_name": short_name(DEFAULT_EMB_MODEL),
            "dim": items.shape[1],
            "num_items": items.shape[0],
            "template": "synthetic",
            "backend": "synthetic",
        },
    )


def bench_inproc(n: int, dim: int, b: int, repeats: int, chunk: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    items = synthetic_items(n, dim)
    q = synthetic_items(b, dim, seed=7)
    targets, histories = batch(n, b)
    # one-off library start-up (MKL kernels, OpenMP threads) must not count as either path's memory
    small = min(n, 1000)
    scoring.chunked_ranks(q, items[:small], targets % small, chunk, None)
    metrics.target_ranks(q @ items[:small].T, targets % small)
    base = rss_peak_mb()
    # memory first, one call each (chunked before bare, whose bigger peak would hide it) ...
    r1 = scoring.chunked_ranks(q, items, targets, chunk, histories)
    chunk_peak = rss_peak_mb()

    def bare():
        return metrics.target_ranks(q @ items.T, targets, histories)

    r2 = bare()
    bare_peak = rss_peak_mb()
    # ... then time them interleaved
    (t_chunk, _), (t_bare, _) = timed_pair(lambda: scoring.chunked_ranks(q, items, targets, chunk, histories), bare, repeats)
    return {
        "n": n,
        "chunk_s": t_chunk,
        "bare_s": t_bare,
        "ratio": t_chunk / t_bare,
        "chunk_rss_mb": chunk_peak - base,
        "bare_rss_mb": bare_peak - chunk_peak,
        "items_mb": items.numel() * 4 / 2**20,
        "bxn_mb": b * n * 4 / 2**20,
        "rank_mismatches": int((r1 != r2).sum()),
        "threads": threads,
    }


def main() -> None:
    quiet_when_piped()  # bars ("Loading weights", encoders) only on a terminal, never in a saved log
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1682, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk_size", type=int, default=RetrievalSettings().chunk_size)
    ap.add_argument("--part", choices=("actor", "inproc", "both", "inproc_one"), default="both")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=[1],
        help="torch threads for the in-process part (1 = what Ray gives an actor with num_cpus=0)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write a markdown report here")
    args = ap.parse_args()
    if args.batch > len(TEXTS):
        ap.error(f"--batch at most {len(TEXTS)}")

    actor_rows, inproc_rows = [], []
    if args.part in ("actor", "both"):
        import ray

        from rl4rec_core.ray_access import init_ray

        # a local instance like the project's own: bound to 127.0.0.1, Ray's token authentication on
        init_ray("local", num_cpus=2, include_dashboard=False, namespace="rl4rec-bench", log_to_driver=False)
        for n in args.sizes:
            row = bench_actor(n, args.dim, args.batch, args.repeats, args.chunk_size)
            print(row, flush=True)
            actor_rows.append(row)
        ray.shutdown()
    if args.part == "inproc_one":  # one size in a fresh process, so its peak RSS is its own
        print("JSON" + json.dumps(bench_inproc(args.sizes[0], args.dim, args.batch, args.repeats, args.chunk_size, args.threads[0])))
        return
    if args.part in ("inproc", "both"):
        for threads in args.threads:
            for n in args.sizes:
                cmd = [sys.executable, __file__, "--part", "inproc_one", "--sizes", str(n), "--dim", str(args.dim),
                       "--batch", str(args.batch), "--repeats", str(args.repeats), "--chunk_size", str(args.chunk_size),
                       "--threads", str(threads)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.split("JSON", 1)[1])
                print(row, flush=True)
                inproc_rows.append(row)
    if args.out and args.part != "inproc_one":
        args.out.write_text(report(args, actor_rows, inproc_rows))
        print(f"wrote {args.out}")


def report(args, actor_rows, inproc_rows) -> str:
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        "# Retrieval benchmark",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs while measured), "
        f"torch {torch.__version__}, batch B = {args.batch} texts, dim {args.dim}, chunk {args.chunk_size} items, "
        f"median of {args.repeats} runs after one warm-up. Items are random unit vectors; each user has a "
        "20-item history masked out.",
        "",
    ]
    if actor_rows:
        lines += [
            "## Through the Ray actor (includes encoding the 16 texts with MiniLM in the actor)",
            "",
            "| items N | full-matrix path: s/batch | rewards/s | bytes returned | in-actor path: s/batch | rewards/s | bytes returned | rank mismatches |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in actor_rows:
            lines.append(
                f"| {r['n']:,} | {r['full_s']:.3f} | {r['full_rps']:.0f} | {r['full_bytes']:,} "
                f"| {r['actor_s']:.3f} | {r['actor_rps']:.0f} | {r['actor_bytes']:,} | {r['rank_mismatches']}/{args.batch} |"
            )
        lines.append("")
    if inproc_rows:
        lines += [
            "## Scoring only, in one process (same matrix, fixed query vectors)",
            "",
            "| torch threads | items N | item matrix MB | chunked ranks s | bare matmul + rank s | chunked / bare | peak RSS growth chunked MB | peak RSS growth bare MB | [B, N] scores MB | rank mismatches |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sorted(inproc_rows, key=lambda r: (r["threads"], r["n"])):
            lines.append(
                f"| {r['threads']} | {r['n']:,} | {r['items_mb']:.0f} | {r['chunk_s']:.4f} | {r['bare_s']:.4f} | {r['ratio']:.2f} "
                f"| {r['chunk_rss_mb']:.0f} | {r['bare_rss_mb']:.0f} | {r['bxn_mb']:.1f} | {r['rank_mismatches']}/{args.batch} |"
            )
        lines.append("")
        lines += [
            "Peak RSS growth is measured against the process's own set-up peak (the item matrix plus the few MB "
            "of blocks used to build it), so 0 means the path never went above it: the chunked path holds "
            "`B x chunk` scores at a time whatever N is, while the bare path adds the `[B, N]` scores, their "
            "masked copy and a boolean matrix. Ray gives an actor `OMP_NUM_THREADS` = its CPU count (at least 1), "
            "so 1 thread is what the service uses with `num_cpus=0`.",
            "",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
