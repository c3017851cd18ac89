"""Raw input that was refused for the wrong reason or stored silently (issue 22, part 6): UTF-16 without a
byte-order mark is named as such, an encoding that cannot hold a file (``idna``) is refused up front, and
a NUL byte in a title or an id is refused instead of stored."""

from __future__ import annotations

import pytest

from rl4rec_core.cli import main as cli_main
from rl4rec_core.data import load_dataset, prepare_dataset
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.settings import Settings
from tests.data.test_input_errors import INTER, ITEMS, SEQS, amazon, recbole, refused


@pytest.mark.parametrize("order", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_named_with_its_flag(rl4rec_dirs, tmp_path, capsys, order):
    src = recbole(tmp_path / "raw", encoding=order)
    rc, err = refused(capsys, src)
    assert rc == 2 and "toy.inter is UTF-16 (every other byte is 0), not utf-8" in err
    assert f"Fix: pass --encoding {order}" in err and "column" not in err  # before: no 'user_id' column
    prepare_dataset("toy", source=src, encoding=order)
    assert load_dataset("toy").item_titles == ["Crème", "Amélie", "Naïve"]


def test_utf16_amazon_sequences_without_a_bom(rl4rec_dirs, tmp_path):
    src = amazon(tmp_path / "raw", encoding="utf-16-le")
    with pytest.raises(DataError, match=r"sequential_data.txt is UTF-16 .*--encoding utf-16-le"):
        prepare_dataset("toy", source=src)


@pytest.mark.parametrize("encoding", ["idna", "IDNA"])
def test_an_encoding_that_cannot_hold_a_file_is_refused_up_front(rl4rec_dirs, tmp_path, capsys, encoding):
    rc, err = refused(capsys, recbole(tmp_path / "raw"), "--encoding", encoding)
    assert rc == 2 and f"--encoding {encoding!r} cannot hold a data file" in err and "Fix:" in err
    with pytest.raises(ConfigError, match="cannot hold a data file"):
        Settings.of(encoding=encoding)  # `rl4rec train/run --encoding idna` (before: UnicodeError traceback)


def test_a_nul_byte_in_a_title_is_refused(rl4rec_dirs, tmp_path, capsys):
    src = recbole(tmp_path / "raw", items=ITEMS.replace("Amélie", "Amé\x00lie"))
    rc, err = refused(capsys, src)
    assert rc == 2 and "toy.item: the title of item '2' holds a NUL byte" in err and "Fix: remove it" in err


@pytest.mark.parametrize("layout", ["recbole", "amazon"])
def test_a_nul_byte_in_a_user_id_is_refused(rl4rec_dirs, tmp_path, capsys, layout):
    """Before: `u\\x001` became a user of its own beside `u1`, splitting one person's history."""
    if layout == "recbole":
        src = recbole(tmp_path / "raw", inter=INTER + "u\x001\t1\t5\t4\n")
    else:
        src = amazon(tmp_path / "raw", seqs=SEQS + "u\x001 B1 B2 B3\n")
    rc, err = refused(capsys, src)
    assert rc == 2 and "the user id 'u\\x001' holds a NUL byte" in err, err


def test_a_nul_byte_in_an_item_id_of_a_sequence_is_refused(rl4rec_dirs, tmp_path, capsys):
    rc, err = refused(capsys, amazon(tmp_path / "raw", seqs=SEQS + "u3 B1 B\x002 B3\n"))
    assert rc == 2 and "the item id 'B\\x002' holds a NUL byte" in err


def test_train_with_idna_exits_2_in_one_line(rl4rec_dirs, capsys):
    assert cli_main(["train", "--policy", "dummy", "--encoding", "idna", "--service", "local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --encoding 'idna' cannot hold a data file") and err.count("\n") == 1
