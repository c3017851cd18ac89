"""The ``--resume`` fuzz run, in a process of its own so that its peak memory is its own.

``python -m tests.helpers.checkpoint_fuzz ROOT --seed S --cases N`` trains a 12-step dummy run on the tiny
dataset (checkpoint_step_5, checkpoint_step_10, checkpoint_final), then for each case copies it, damages or
crafts the newest checkpoint (or the two newest) with a defect of ``tests/helpers/crafted_checkpoints.py``
and resumes as ``--resume`` does (``resume_latest``). It writes ``ROOT/report.json``: the failures (a
traceback, an error instead of a fallback, the wrong checkpoint, a warning over one line), the defects
tried, and the peak memory (``ru_maxrss``) after the set-up and at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import sys
import traceback
from collections import Counter
from pathlib import Path

MAX_WARNING_CHARS = 1500


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _trainer(tiny, service, run: Path, **kw):
    from rl4rec_core.policy.registry import build_policy
    from rl4rec_core.settings import Settings
    from rl4rec_core.training.trainer import RLTrainer

    cfg = Settings.of(**{"dataset_name": tiny.name, "num_steps": 12, "batch_size": 8, "group_size": 4,
                         "policy": "dummy", "save_every": 5, "log_every": 5, "reward": "ndcg@10", "kl_coef": 0.0,
                         "checkpoint_dir": str(run), **kw})
    return RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False)


def _one_case(rng: random.Random, base: Path, work: Path, tiny, service, warnings: _Warnings,
              kinds: Counter) -> tuple[str, str | None]:
    """``(label, failure or None)`` of one damaged copy of the base run; counts its defects in ``kinds``."""
    from rl4rec_core.errors import Rl4recError
    from rl4rec_core.training.resume import resume_latest
    from tests.helpers import crafted_checkpoints as cc

    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work)
    crafted = rng.random() < 0.85
    damaged = ["checkpoint_final"] + (["checkpoint_step_10"] if rng.random() < 0.3 else [])
    defects = [cc.pick(rng) for _ in damaged]
    kinds.update(d.__name__ for d in defects)
    labels = [cc.apply(rng, work / name, defect, crafted) for name, defect in zip(damaged, defects)]
    expected = work / ("checkpoint_step_5" if len(damaged) == 2 else "checkpoint_step_10")
    label = f"{'crafted' if crafted else 'damaged'} {' + '.join(damaged)}: {' | '.join(labels)}"
    warnings.messages.clear()
    try:
        trainer = _trainer(tiny, service, work, num_steps=15, resume=True)
        trainer._check_service()
        path, _ = resume_latest(trainer)
    except Rl4recError as e:
        return label, f"refused instead of falling back: {str(e)[:300]}"
    except BaseException as e:  # noqa: BLE001 - a traceback is what the fuzz looks for
        where = traceback.format_tb(e.__traceback__)[-1].strip().splitlines()[0]
        return label, f"raised {type(e).__name__}: {str(e)[:200]} at {where}"
    skipped = [m for m in warnings.messages if m.startswith("--resume: skipping")]
    if path != expected or trainer.step != int(expected.name.rsplit("_", 1)[1]):
        return label, f"resumed from {path.name} at step {trainer.step}, not {expected.name}"
    if len(skipped) != len(damaged) or any("\n" in m or len(m) > MAX_WARNING_CHARS for m in skipped):
        return label, f"skip warnings not one line each: {skipped!r:.300}"
    return label, None


def run(root: Path, seed: int, cases: int) -> dict:
    for var, sub in (("RL4REC_DATA_DIR", "data"), ("RL4REC_EMB_DIR", "emb"), ("RL4REC_CHECKPOINT_ROOT", "ckpt")):
        os.environ[var] = str(root / sub)
    from rl4rec_core.data import load_dataset
    from tests.helpers.tiny_recdata import WordVectorEncoder, make_service, write_tiny_dataset

    shutil.rmtree(root / "base", ignore_errors=True)
    tiny = load_dataset(write_tiny_dataset(root / "data"))
    service = make_service(tiny, WordVectorEncoder())
    _trainer(tiny, service, root / "base").train()
    warnings = _Warnings()
    logging.getLogger().addHandler(warnings)
    logging.getLogger().setLevel(logging.WARNING)
    setup = _rss_mb()
    rng, failures, kinds = random.Random(seed), [], Counter()
    for i in range(cases):
        label, failure = _one_case(rng, root / "base", root / "case", tiny, service, warnings, kinds)
        if failure:
            failures.append(f"case {i} ({label}): {failure}")
    return {"cases": cases, "seed": seed, "failures": failures, "kinds": dict(kinds),
            "setup_rss_mb": round(setup, 1), "peak_rss_mb": round(_rss_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--cases", type=int, default=240)
    args = parser.parse_args(argv)
    report = run(args.root, args.seed, args.cases)
    (args.root / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}), f"{len(report['failures'])} failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
