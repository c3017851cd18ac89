"""Fuzz ``rl4rec data prepare`` with generated malformed files (tests/helpers/malformed.py).

For every case, through the command line: exit code 2, one line on stderr (``error: ...``), no
traceback, and nothing written under the data folder (no dataset folder, no temporary one).
"""

from __future__ import annotations

import shutil

import pytest

from rl4rec_core.cli import main as cli_main
from tests.helpers.malformed import amazon_base, cases, recbole_base

CASES_PER_LAYOUT = 240
MAX_MESSAGE_CHARS = 1500  # one readable line, even when the file holds a field of megabytes


def _write(folder, files):
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _prepare(folder, args, capsys):
    capsys.readouterr()
    rc = cli_main(["data", "prepare", "--dataset", "fz", "--source", str(folder), *args])
    return rc, capsys.readouterr()


@pytest.mark.parametrize("base", [recbole_base, amazon_base])
def test_the_valid_bases_prepare(rl4rec_dirs, tmp_path, capsys, base):
    """The generators start from these; each case's defect alone is what makes it fail."""
    rc, out = _prepare(_write(tmp_path / "raw", base()), [], capsys)
    assert rc == 0, out.err
    assert (rl4rec_dirs["data"] / "fz" / "items.parquet").is_file()


@pytest.mark.parametrize("layout", ["recbole", "amazon"])
def test_malformed_files_are_one_line_errors_and_leave_nothing(rl4rec_dirs, tmp_path, capsys, layout):
    failures = []
    for label, files, args in cases(layout, CASES_PER_LAYOUT):
        try:
            rc, out = _prepare(_write(tmp_path / "raw", files), args, capsys)
        except BaseException as e:  # noqa: BLE001 - a raised exception is what the test is looking for
            failures.append(f"{label}: raised {type(e).__name__}: {str(e)[:200]}")
            continue
        lines = out.err.splitlines()
        left = sorted(p.name for p in rl4rec_dirs["data"].iterdir()) if rl4rec_dirs["data"].exists() else []
        if rc != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in out.err:
            failures.append(f"{label}: rc {rc}, stderr {out.err[:300]!r}")
        elif len(lines[0]) > MAX_MESSAGE_CHARS:
            failures.append(f"{label}: a {len(lines[0]):,}-character message")
        elif left:
            failures.append(f"{label}: left {left} in the data folder")
    assert not failures, f"{len(failures)} of {CASES_PER_LAYOUT} cases:\n" + "\n".join(failures[:40])
