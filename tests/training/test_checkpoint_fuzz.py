"""Fuzz ``--resume`` with 240 damaged and crafted checkpoints (seeded; tests/helpers/crafted_checkpoints.py),
in a process of its own (tests/helpers/checkpoint_fuzz.py) so that its peak memory is measured alone.

Every case: no traceback, each skipped checkpoint one warning line, the run resumes from the newest
intact checkpoint, and the process never holds more than ``MEMORY_BOUND_MB`` above its set-up (among the
cases, files that declare or inflate to a 1 GiB tensor).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CASES = 240
SEED = 22
# above the set-up (python, torch, the tiny run): a checkpoint may cost what the model needs, not what it says
MEMORY_BOUND_MB = 128


def test_resume_survives_crafted_checkpoints_and_lands_on_the_newest_intact_one(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.helpers.checkpoint_fuzz", str(tmp_path), "--seed",
                           str(SEED), "--cases", str(CASES)], env=os.environ.copy(), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["cases"] == CASES and not report["failures"], (
        f"{len(report['failures'])} of {CASES} cases:\n" + "\n".join(report["failures"][:40]))
    from tests.helpers.crafted_checkpoints import CRAFTED, DAMAGE, inflating_record

    assert {d.__name__ for d in (*CRAFTED, *DAMAGE, inflating_record)} <= set(report["kinds"]), report["kinds"]
    grown = report["peak_rss_mb"] - report["setup_rss_mb"]
    assert grown < MEMORY_BOUND_MB, f"peak memory grew by {grown:.0f} MB over the set-up ({report})"
