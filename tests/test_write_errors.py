"""A failed write says why in one line, with the fix (rl4rec_core/write_errors.py): a full disk, the file-size
limit, a read-only folder; and an output path that cannot be written is refused before the work."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.write_errors import check_output_file, write_error


@pytest.mark.parametrize("code, says", [
    (errno.ENOSPC, "the disk holding /ckpt is full. Fix: free space on it, or pass another --checkpoint_dir"),
    (errno.EDQUOT, "the disk quota for /ckpt is used up"),
    (errno.EFBIG, "grew past this process's file-size limit (ulimit -f). Fix: raise the limit"),
    (errno.EROFS, "/ckpt is on a read-only file system. Fix: pass another --checkpoint_dir on a writable disk"),
    (errno.EACCES, "permission denied writing to /ckpt. Fix: make it writable (chmod u+w)"),
])
def test_each_cause_names_its_fix(code, says):
    text = str(write_error(OSError(code, os.strerror(code)), "/ckpt", "write checkpoint checkpoint_step_3"))
    assert text.startswith("could not write checkpoint checkpoint_step_3: ") and says in text and "\n" not in text


def test_an_output_path_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a folder; pass a file path"):
        check_output_file(tmp_path)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_file(tmp_path / "file" / "metrics.json")
    check_output_file(tmp_path / "new" / "metrics.json")  # a folder still to be made is fine


FULL_DISK = """
set -e
mount -t tmpfs -o size=160k tmpfs "$DISK"
set +e
"$PY" -m flows.cli train --dataset_name "$NAME" --policy dummy --num_steps 6 --batch_size 8 --group_size 4 \\
    --save_every 1 --service local --no_progress --checkpoint_dir "$DISK/run"
echo "EXIT $?"
"$PY" -c "
import sys
from rl4rec_core.checkpoints import list_checkpoints, verify_checkpoint
found = list_checkpoints(sys.argv[1])
for _, p in found:
    verify_checkpoint(p)
print('INTACT', len(found), [p.name for _, p in found])
" "$DISK/run"
"""


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_older_checkpoints(rl4rec_dirs, tmp_path):
    """A real full disk: a 160 KB tmpfs in a mount namespace of the child's own (where the machine lets root
    make one), which the run's checkpoints outgrow."""
    if shutil.which("unshare") is None or os.geteuid() != 0 or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs root and unshare -m to mount a small disk")
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.files import generate_item_embeddings
    from tests.helpers.tiny_recdata import write_tiny_dataset

    name = write_tiny_dataset(rl4rec_dirs["data"])
    generate_item_embeddings(load_dataset(name), backend="sentence-transformers")
    (tmp_path / "disk").mkdir()
    env = {**os.environ, "DISK": str(tmp_path / "disk"), "PY": sys.executable, "NAME": name}
    done = subprocess.run(["unshare", "-m", "sh", "-c", textwrap.dedent(FULL_DISK)], env=env, capture_output=True,
                          text=True, timeout=600)
    if "mount:" in done.stderr and "EXIT" not in done.stdout:
        pytest.skip(f"could not mount a small disk here ({done.stderr.strip()[:120]})")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "EXIT 2" in done.stdout and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "is full. Fix: free space on it, or pass another --checkpoint_dir" in errors[0], errors[0]
    intact = next(line for line in done.stdout.splitlines() if line.startswith("INTACT"))
    assert int(intact.split()[1]) >= 1, intact  # what was written before the disk filled still verifies
