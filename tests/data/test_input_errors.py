"""Input that used to crash the readers or pass silently (issue 14, part 5): every raw file is decoded with
a stated encoding (UTF-8, or ``--encoding``), a BOM is dropped, and every parser failure is a ``DataError``
naming ``file:line`` and the fix. Each test here failed on the code before that change."""

from __future__ import annotations

import gzip
import json

import pytest

from rl4rec_core.cli import main as cli_main
from rl4rec_core.data import load_dataset, prepare_dataset
from rl4rec_core.errors import ConfigError, DataError
from tests.helpers.recbole_files import ITEM_HEADER

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\t1\t5\t1\nu1\t2\t5\t2\nu1\t3\t5\t3\n"
ITEMS = f"{ITEM_HEADER}\n1\tCrème\t1990\tDrama\n2\tAmélie\t2001\tComedy\n3\tNaïve\t1999\tDrama\n"
SEQS = "u1 B1 B2 B3\nu2 B2 B3 B1\n"
RECORDS = [{"asin": "B1", "title": "Crème brûlée torch"}, {"asin": "B2", "title": "Piñata"},
           {"asin": "B3", "title": "Jalapeño sauce"}]
META = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS)


def recbole(folder, inter=INTER, items=ITEMS, encoding="utf-8", bom=b""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.inter").write_bytes(bom + inter.encode(encoding))
    (folder / "toy.item").write_bytes(bom + items.encode(encoding))
    return folder


def amazon(folder, seqs=SEQS, meta=META, encoding="utf-8", bom=b"", meta_name="meta.json"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sequential_data.txt").write_bytes(bom + seqs.encode(encoding))
    (folder / meta_name).write_bytes(bom + meta.encode(encoding))
    return folder


def refused(capsys, src, *args):
    """``rl4rec data prepare`` on ``src``: the exit code and the one line it printed on stderr."""
    capsys.readouterr()
    rc = cli_main(["data", "prepare", "--dataset", "toy", "--source", str(src), *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return rc, err


def parquet_bytes(data_dir, name):
    return [(data_dir / name / f).read_bytes() for f in ("items.parquet", "sequences.parquet")]


# ---- encodings: UTF-8 by default with a clear error, --encoding for the rest

def test_latin1_amazon_metadata_names_the_line_and_the_flag(rl4rec_dirs, tmp_path, capsys):
    src = amazon(tmp_path / "raw", meta=META, encoding="latin-1")  # "Crème" as the single byte 0xe8
    with pytest.raises(DataError, match=r"meta.json:1: bytes b'\\xe8' .* not valid utf-8 .*--encoding latin-1"):
        prepare_dataset("toy", source=src)
    rc, err = refused(capsys, src)
    assert rc == 2 and err.startswith("error: ") and "meta.json:1:" in err
    assert not (rl4rec_dirs["data"] / "toy").exists()
    assert cli_main(["data", "prepare", "--dataset", "toy", "--source", str(src), "--encoding", "latin-1"]) == 0
    ds = load_dataset("toy")
    assert ds.item_titles == ["Crème brûlée torch", "Piñata", "Jalapeño sauce"]
    assert ds.meta["encoding"] == "iso8859-1"


def test_latin1_sequence_file_names_the_line(rl4rec_dirs, tmp_path):
    src = amazon(tmp_path / "raw", seqs="u1 B1 B2 B3\nJosé B2 B3 B1\n", meta=META, encoding="latin-1")
    with pytest.raises(DataError, match=r"sequential_data.txt:2: .*not valid utf-8.*Fix: .*--encoding"):
        prepare_dataset("toy", source=src)  # before: UnicodeDecodeError
    prepare_dataset("toy", source=src, encoding="latin-1")
    assert load_dataset("toy").sequences["user_id"].tolist() == ["u1", "José"]


def test_latin1_recbole_items_name_the_line_and_decode_with_the_flag(rl4rec_dirs, tmp_path):
    src = recbole(tmp_path / "raw", items=ITEMS, encoding="latin-1")
    with pytest.raises(DataError, match=r"toy.item:2: bytes b'\\xe8' .*not valid utf-8.*--encoding latin-1"):
        prepare_dataset("toy", source=src)
    assert not (rl4rec_dirs["data"] / "toy").exists()
    prepare_dataset("toy", source=src, encoding="latin-1")
    assert load_dataset("toy").item_titles == ["Crème", "Amélie", "Naïve"]


def test_utf16_files_need_and_accept_the_flag(rl4rec_dirs, tmp_path):
    src = recbole(tmp_path / "raw", encoding="utf-16")
    with pytest.raises(DataError, match=r"toy.inter:1: .*--encoding utf-16"):
        prepare_dataset("toy", source=src)
    prepare_dataset("toy", source=src, encoding="utf-16")
    assert load_dataset("toy").item_titles == ["Crème", "Amélie", "Naïve"]


def test_an_unknown_encoding_is_a_config_error(rl4rec_dirs, tmp_path, capsys):
    src = recbole(tmp_path / "raw")
    with pytest.raises(ConfigError, match=r"--encoding 'klingon' is not a text encoding"):
        prepare_dataset("toy", source=src, encoding="klingon")
    rc, err = refused(capsys, src, "--encoding", "base64")
    assert rc == 2 and "--encoding 'base64' is not a text encoding" in err


# ---- a BOM is dropped, and changes nothing else

def test_a_bom_in_recbole_files_is_dropped(rl4rec_dirs, tmp_path):
    prepare_dataset("plain", source=recbole(tmp_path / "plain"))
    prepare_dataset("bom", source=recbole(tmp_path / "bom", bom=b"\xef\xbb\xbf"))  # before: no 'user_id' column
    assert parquet_bytes(rl4rec_dirs["data"], "bom") == parquet_bytes(rl4rec_dirs["data"], "plain")
    assert "encoding" not in load_dataset("bom").meta  # UTF-8 is the default, not recorded


@pytest.mark.parametrize("meta_name, meta", [("meta.json", META),
                                              ("meta.json", json.dumps({r["asin"]: r for r in RECORDS}))])
def test_a_bom_in_amazon_files_is_dropped(rl4rec_dirs, tmp_path, meta_name, meta):
    prepare_dataset("plain", source=amazon(tmp_path / "plain", meta=meta, meta_name=meta_name))
    prepare_dataset("bom", source=amazon(tmp_path / "bom", meta=meta, meta_name=meta_name, bom=b"\xef\xbb\xbf"))
    assert load_dataset("bom").sequences["user_id"].tolist() == ["u1", "u2"]  # before: '\ufeffu1'
    assert parquet_bytes(rl4rec_dirs["data"], "bom") == parquet_bytes(rl4rec_dirs["data"], "plain")


# ---- parser failures are DataErrors with file:line, not tracebacks

@pytest.mark.parametrize("bad_line, message", [
    ("{[1]: 2}", r"meta.json:2: not a JSON record: \{\[1\]: 2\}"),  # before: TypeError
    ("{{}: 1}", r"meta.json:2: not a JSON record"),  # before: TypeError
    ('{"asin": "B9", "price": ' + "1" * 5000 + "}", r"meta.json:2: not a JSON record: .*\(5,0\d\d characters\)"),
])
def test_bad_metadata_lines_name_the_line(rl4rec_dirs, tmp_path, capsys, bad_line, message):
    meta = META.split("\n", 1)[0] + "\n" + bad_line + "\n" + META.split("\n", 1)[1]
    src = amazon(tmp_path / "raw", meta=meta)
    with pytest.raises(DataError, match=message):
        prepare_dataset("toy", source=src)
    assert refused(capsys, src)[0] == 2


@pytest.mark.parametrize("meta", ["42\n", '"items"\n', "null\n"])
def test_metadata_that_is_one_json_value_is_named(rl4rec_dirs, tmp_path, meta):
    with pytest.raises(DataError, match=r"meta.json:1: record 1 is a \w+, not an object"):  # before: TypeError
        prepare_dataset("toy", source=amazon(tmp_path / "raw", meta=meta))


def test_a_record_nested_too_deeply_is_named(rl4rec_dirs, tmp_path):
    deep = {"asin": "B9", "title": json.loads("[" * 700 + '"x"' + "]" * 700)}  # JSON reads it, flattening recursed
    meta = META + json.dumps(deep) + "\n"
    with pytest.raises(DataError, match=r"meta.json:4: record 4 nests lists or objects too deeply"):
        prepare_dataset("toy", source=amazon(tmp_path / "raw", meta=meta))


@pytest.mark.parametrize("packed", [lambda: gzip.compress(META.encode())[:-9], lambda: b"not gzip at all"])
def test_a_broken_gzip_file_is_named(rl4rec_dirs, tmp_path, packed):
    src = amazon(tmp_path / "raw")
    (src / "meta.json").unlink()
    (src / "meta.json.gz").write_bytes(packed())
    with pytest.raises(DataError, match=r"meta.json.gz is not a complete gzip file .*Fix:"):  # before: EOFError
        prepare_dataset("toy", source=src)


@pytest.mark.parametrize("header, message", [
    ("item_id:token\tmovie_title:token_seq\titem_id:token\tclass:token_seq",
     r"toy.item:1: field 'item_id' appears twice"),
    ("item_id:token\tmovie_title:token_seq\titem_idx:token\tclass:token_seq", r"column is named 'item_idx'"),
    ("item_id:token\tmovie_title:token_seq\t:token\tclass:token_seq", r"toy.item:1: header column ':token'"),
])
def test_bad_item_headers_are_named(rl4rec_dirs, tmp_path, header, message):
    items = header + "\n" + ITEMS.split("\n", 1)[1]
    with pytest.raises(DataError, match=message):
        prepare_dataset("toy", source=recbole(tmp_path / "raw", items=items))


def test_two_title_aliases_keep_the_first(rl4rec_dirs, tmp_path):
    items = "item_id:token\tmovie_title:token_seq\tname:token_seq\n1\tA\ta\n2\tB\tb\n3\tC\tc\n"
    prepare_dataset("toy", source=recbole(tmp_path / "raw", items=items))  # before: two 'title' columns crashed
    ds = load_dataset("toy")
    assert ds.item_titles == ["A", "B", "C"] and "name" in ds.items.columns


def test_a_bad_timestamp_names_its_line_and_a_huge_field_is_cut(rl4rec_dirs, tmp_path):
    inter = INTER.replace("u1\t3\t5\t3", "\n\nu1\t3\t5\t" + "x" * 200_000)  # two blank lines before it
    with pytest.raises(DataError) as e:
        prepare_dataset("toy", source=recbole(tmp_path / "raw", inter=inter))
    message = str(e.value)
    assert "toy.inter:6: timestamp 'xxxx" in message and "(200,000 characters)" in message
    assert len(message) < 500
