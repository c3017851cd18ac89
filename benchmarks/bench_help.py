"""Wall time of ``rl4rec <command> --help`` for every command, each in a fresh interpreter.

    python benchmarks/bench_help.py [--repeats 5]

Prints the median and the best of the repeats per command, and the heavy modules each one loaded (none is
expected: a parser is built from the settings and the standard library; tests/cli/test_lazy_help.py checks it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = ["--help", "data --help", "data prepare --help", "embed --help", "tune-retrieval --help",
            "evaluate --help", "serve --help", "sft --help", "train --help", "run --help", "ab --help",
            "assets --help"]
HEAVY = ("torch", "pandas", "numpy", "prefect", "ray", "mlflow", "transformers")
PROBE = ("import json, sys\nfrom flows.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)")


def measure(words: list[str]) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *words], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    return wall, [m for m in HEAVY if m in loaded]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{'rl4rec ...':<24} {'median s':>9} {'best s':>8}  heavy modules loaded")
    for command in COMMANDS:
        runs = [measure(command.split()) for _ in range(args.repeats)]
        walls = [w for w, _ in runs]
        print(f"{command:<24} {statistics.median(walls):>9.3f} {min(walls):>8.3f}  {', '.join(runs[0][1]) or '-'}")


if __name__ == "__main__":
    main()
