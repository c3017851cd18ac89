"""Seeded generators of malformed raw datasets, for the fuzz test of ``rl4rec data prepare``.

Each generator starts from a small valid dataset (``recbole_base`` / ``amazon_base``, which prepare
cleanly) and applies one defect that no valid dataset has, with random parameters: an encoding error,
a truncation, a wrong field count, bad JSON, an empty file, a doubled BOM, a huge field, NUL bytes...
Every defect is chosen so that the result can never be valid, so ``prepare`` must refuse every case.

A case is ``(label, {file name: bytes}, extra CLI arguments)``.
"""

from __future__ import annotations

import gzip
import json
import random

BOM = b"\xef\xbb\xbf"
# byte sequences that are invalid UTF-8 wherever they are inserted
INVALID_UTF8 = (b"\xff", b"\xfe", b"\xc0\xaf", b"\xe9x", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82",
                b"\x80")
NOT_NUMBERS = ("yesterday", "", "1.2.3", "12:00", "nan", "--1", "0x1G", "1e", "١٢x")
BAD_JSON_LINES = ("{[1]: 2}", "{{}: 1}", "{'asin': 'B1', 'x': [}", '{"asin": "B1",}', "{'asin': 'B1' 'x': 1}",
                  "@@not json", "asin=B1", "{'asin': {1, [2]}}", '{"asin": "B1", "title": "x"', "[" * 5000,
                  "{" * 300, "1" * 5000, '{"asin": "B1", "price": ' + "1" * 5000 + "}", "Infinity]", "{'a': 1}}")
NOT_OBJECTS = ("[1, 2]", '"just a string"', "42", "null", "true", "3.5", "[]")

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
INTER_ROWS = ["u1\t1\t5\t100", "u1\t2\t4\t200", "u1\t3\t3\t300", "u2\t2\t1\t150", "u2\t3\t2\t250", "u2\t4\t5\t350"]
ITEM_ROWS = ["1\tCafé Society\t2016\tComedy", "2\tAmélie\t2001\tComedy Romance", "3\tNaïve\t1999\tDrama",
             "4\tSmörgåsbord\t1983\tComedy"]
SEQS = ["u1 B1 B2 B3", "u2 B2 B3 B4", "u3 B4 B1 B2"]
RECORDS = {"B1": {"title": "Crème brûlée torch", "brand": "Acmé", "categories": [["Kitchen", "Tools"]]},
           "B2": {"title": "Piñata", "description": ["Fun.", "Colourful."]},
           "B3": {"title": "Jalapeño sauce", "brand": None},
           "B4": {"title": "Smörgåsbord plates", "categories": "Home, Dining"}}


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def recbole_base() -> dict[str, bytes]:
    return {"toy.inter": _text([INTER_HEADER, *INTER_ROWS]), "toy.item": _text([ITEM_HEADER, *ITEM_ROWS])}


def amazon_base() -> dict[str, bytes]:
    meta = [json.dumps({"asin": k, **v}, ensure_ascii=False) for k, v in RECORDS.items()]
    return {"sequential_data.txt": _text(SEQS), "meta.json": _text(meta)}


# ---------------------------------------------------------------- defects common to both layouts

def insert_invalid_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(INVALID_UTF8) + data[at:]


def random_bytes(rng: random.Random, _data: bytes) -> bytes:
    junk = bytearray(rng.randbytes(rng.randrange(1, 4096)))
    junk.insert(rng.randrange(len(junk) + 1), 0xFF)  # never UTF-8, whatever the rest is
    return bytes(junk)


def empty(rng: random.Random, _data: bytes) -> bytes:
    return rng.choice([b"", b"\n", b"\n\n\n", b"\r\n", BOM, BOM + b"\n", b"\t\n"])


def _lines(data: bytes) -> list[bytes]:
    return data.decode().split("\n")[:-1]


def _join(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------- RecBole atomic files

def _recbole_text(target: str):
    """A defect of one atomic file given as a function of its lines (header first)."""
    def wrap(fn):
        def apply(rng, files):
            files[target] = _join(fn(rng, [line for line in files[target].decode().split("\n") if line]))
            return files
        apply.__name__ = f"{fn.__name__}[{target}]"
        return apply
    return wrap


def _cut_header(rng, files, target):
    header = files[target].split(b"\n", 1)[0]
    files[target] = header[:rng.randrange(len(header))]
    return files


def _cut_line(rng, files, target):
    """End the file inside a data line, before its last tab (a copy stopped half-way)."""
    data = files[target]
    starts = [i + 1 for i, b in enumerate(data[:-1]) if b == 0x0A]
    start = rng.choice(starts)
    last_tab = data.rindex(b"\t", start, data.index(b"\n", start))
    files[target] = data[:rng.randrange(start + 1, last_tab + 1)]
    return files


def _field_count(rng, lines):
    i = rng.randrange(1, len(lines))
    fields = lines[i].split("\t")
    if rng.random() < 0.5:
        fields.insert(rng.randrange(len(fields) + 1), rng.choice(["x", "", "5", "Comedy"]))
    else:
        del fields[rng.randrange(len(fields))]
    lines[i] = "\t".join(fields)
    return lines


def _bad_header_type(rng, lines):
    cols = lines[0].split("\t")
    i = rng.randrange(len(cols))
    name = cols[i].partition(":")[0]
    cols[i] = rng.choice([name, f"{name}:int", f"{name}:", f"{name}:string", f"{name}:Token", ":token",
                          f"{name}:token:seq", f"{name}:" + "x" * rng.randrange(10_000, 300_000)])
    lines[0] = "\t".join(cols)
    return lines


def _duplicate_header_field(rng, lines):
    cols = lines[0].split("\t")
    i, j = rng.sample(range(len(cols)), 2)
    cols[j] = cols[i].partition(":")[0] + ":" + cols[j].partition(":")[2]
    lines[0] = "\t".join(cols)
    return lines


def _nul(rng, lines):
    if rng.random() < 0.5:  # inside a column's type
        cols = lines[0].split("\t")
        i = rng.randrange(len(cols))
        at = rng.randrange(cols[i].index(":") + 1, len(cols[i]) + 1)
        cols[i] = cols[i][:at] + "\x00" + cols[i][at:]
        lines[0] = "\t".join(cols)
    else:  # instead of a tab: one field too few
        i = rng.randrange(1, len(lines))
        lines[i] = lines[i].replace("\t", "\x00", 1)
    return lines


def _lone_cr(rng, lines):
    """A carriage return instead of a tab: the row splits into two short rows."""
    i = rng.randrange(1, len(lines))
    tabs = [k for k, c in enumerate(lines[i]) if c == "\t"]
    k = rng.choice(tabs)
    lines[i] = lines[i][:k] + "\r" + lines[i][k + 1:]
    return lines


def _header_only(rng, lines):
    return lines[:1]


def _double_bom(rng, files, target):
    files[target] = BOM + BOM + files[target]
    return files


def _latin1_items(rng, files):
    encoding = rng.choice(["latin-1", "cp1252", "utf-16", "utf-32", "utf-16-le", "mac-roman"])
    text = files["toy.item"].decode()
    files["toy.item"] = (BOM if rng.random() < 0.3 and encoding != "utf-16" else b"") + text.encode(encoding)
    return files


@_recbole_text("toy.inter")
def _bad_timestamp(rng, lines):
    i = rng.randrange(1, len(lines))
    fields = lines[i].split("\t")
    fields[3] = rng.choice(NOT_NUMBERS) if rng.random() < 0.8 else "z" * rng.randrange(10_000, 500_000)
    lines[i] = "\t".join(fields)
    return lines


@_recbole_text("toy.inter")
def _no_user_column(rng, lines):
    lines[0] = lines[0].replace("user_id:", rng.choice(["uid:", "user:", "User_id:", "user_id :"]))
    return lines


@_recbole_text("toy.inter")
def _too_few_items(rng, lines):
    return lines[:1] + rng.sample(lines[1:3], rng.randrange(1, 3)) + lines[4:6]


@_recbole_text("toy.inter")
def _other_item_ids(rng, lines):
    return lines[:1] + ["\t".join(f[:1] + ["z" + f[1]] + f[2:]) for f in (line.split("\t") for line in lines[1:])]


@_recbole_text("toy.item")
def _duplicate_item(rng, lines):
    return lines + [rng.choice(lines[1:])]


@_recbole_text("toy.item")
def _reserved_column(rng, lines):
    cols = lines[0].split("\t")
    cols[rng.randrange(1, len(cols))] = "item_idx:token"
    lines[0] = "\t".join(cols)
    return lines


def _on_both(fn):
    """Apply a per-file defect to the .inter or the .item, picked at random."""
    def apply(rng, files):
        return fn(rng, files, rng.choice(["toy.inter", "toy.item"]))
    apply.__name__ = fn.__name__
    return apply


def _bytes_defect(fn):
    def apply(rng, files, target):
        files[target] = fn(rng, files[target])
        return files
    apply.__name__ = fn.__name__
    return _on_both(apply)


def _lines_defect(fn):
    def apply(rng, files, target):
        files[target] = _join(fn(rng, files[target].decode().split("\n")[:-1]))
        return files
    apply.__name__ = fn.__name__
    return _on_both(apply)


def _wrong_encoding_flag(rng, files):
    return files, ["--encoding", rng.choice(["utf-16", "utf-32", "ascii", "no-such-codec", "rot13", "base64"])]


RECBOLE_DEFECTS = (
    _bytes_defect(insert_invalid_utf8), _bytes_defect(random_bytes), _bytes_defect(empty),
    _on_both(_cut_header), _on_both(_cut_line), _on_both(_double_bom), _latin1_items,
    _lines_defect(_field_count), _lines_defect(_bad_header_type), _lines_defect(_duplicate_header_field),
    _lines_defect(_nul), _lines_defect(_lone_cr), _lines_defect(_header_only),
    _bad_timestamp, _no_user_column, _too_few_items, _other_item_ids, _duplicate_item, _reserved_column,
    _wrong_encoding_flag,
)


# ---------------------------------------------------------------- Amazon layout

def _meta_lines(rng, files, fn):
    files["meta.json"] = _join(fn(rng, _lines(files["meta.json"])))
    return files


def _bad_json_line(rng, files):
    def fn(rng, lines):
        line = rng.choice(BAD_JSON_LINES) if rng.random() < 0.9 else "@" + "x" * rng.randrange(10_000, 500_000)
        lines.insert(rng.randrange(len(lines) + 1), line)
        return lines
    return _meta_lines(rng, files, fn)


def _not_an_object(rng, files):
    return _meta_lines(rng, files, lambda rng, lines: lines + [rng.choice(NOT_OBJECTS)])


def _no_id(rng, files):
    return _meta_lines(rng, files, lambda rng, lines: lines + [json.dumps({"title": "no id", "brand": "x"})])


def _duplicate_record(rng, files):
    return _meta_lines(rng, files, lambda rng, lines: lines + [rng.choice(lines)])


def _truncated_meta(rng, files):
    """End the metadata inside a record (JSON lines), or anywhere before the end of one JSON document."""
    if rng.random() < 0.5:
        doc = json.dumps({k: v for k, v in RECORDS.items()}, ensure_ascii=False, indent=rng.choice([None, 2]))
        files["meta.json"] = doc.encode()[:rng.randrange(1, len(doc.encode()) - 1)]
        return files
    data = files["meta.json"]
    starts = [0] + [i + 1 for i, b in enumerate(data[:-1]) if b == 0x0A]
    start = rng.choice(starts)
    end = data.index(b"\n", start)
    files["meta.json"] = data[:rng.randrange(start + 1, end)]  # never the closing brace
    return files


def _meta_scalar(rng, files):
    files["meta.json"] = rng.choice([b"42", b'"items"', b"true", b"null", b"3.5", b'"\xc3\xa9"']) + b"\n"
    return files


def _meta_nul(rng, files):
    data = files["meta.json"]
    at = rng.randrange(len(data) - 1)  # before the final newline: inside a record line
    files["meta.json"] = data[:at] + b"\x00" * rng.randrange(1, 4) + data[at:]
    return files


def _deep_record(rng, files):
    depth = rng.randrange(2_000, 50_000)
    line = '{"asin": "B9", "title": ' + "[" * depth + '"x"' + "]" * depth + "}"
    return _meta_lines(rng, files, lambda rng, lines: lines + [line])


def _double_bom_meta(rng, files):
    files["meta.json"] = BOM * rng.randrange(2, 4) + files["meta.json"]
    return files


def _meta_encoding(rng, files):
    encoding = rng.choice(["latin-1", "cp1252", "utf-16", "utf-32", "mac-roman", "cp850"])
    files["meta.json"] = files["meta.json"].decode().encode(encoding)
    return files


def _gzipped(rng, files):
    """meta.json.gz that is not a complete gzip stream, or random bytes."""
    packed = gzip.compress(files.pop("meta.json"))
    files["meta.json.gz"] = packed[:rng.randrange(len(packed))] if rng.random() < 0.7 else rng.randbytes(200)
    return files


def _gzipped_bad_text(rng, files):
    """A complete gzip stream holding invalid UTF-8."""
    files["meta.json.gz"] = gzip.compress(insert_invalid_utf8(rng, files.pop("meta.json")))
    return files


def _in_file(file: str, tag: str, fn):
    """``fn`` (a defect of one file's bytes) applied to ``file`` of an Amazon dataset."""
    def apply(rng, files):
        files[file] = fn(rng, files[file])
        return files
    apply.__name__ = f"{fn.__name__}[{tag}]"
    return apply


def _seq_defect(fn):
    return _in_file("sequential_data.txt", "seq", fn)


def _meta_defect(fn):
    return _in_file("meta.json", "meta", fn)


def _short_users(rng, files):
    """Every user keeps fewer than 3 items (a wrong column count per line)."""
    lines = [" ".join(line.split()[:rng.randrange(1, 3)]) for line in _lines(files["sequential_data.txt"])]
    files["sequential_data.txt"] = _join(lines)
    return files


def _seq_utf16(rng, files):
    files["sequential_data.txt"] = files["sequential_data.txt"].decode().encode(rng.choice(["utf-16", "utf-32"]))
    return files


def _seq_nuls(rng, files):
    files["sequential_data.txt"] = b"\x00 \x00\x00 \x00 \x00\n" * rng.randrange(1, 4)
    return files


def _duplicate_user(rng, files):
    lines = _lines(files["sequential_data.txt"])
    files["sequential_data.txt"] = _join(lines + [rng.choice(lines)])
    return files


def _other_seq_ids(rng, files):
    lines = [" ".join([f[0]] + ["Z" + i for i in f[1:]]) for f in map(str.split, _lines(files["sequential_data.txt"]))]
    files["sequential_data.txt"] = _join(lines)
    return files


AMAZON_DEFECTS = (
    _seq_defect(insert_invalid_utf8), _meta_defect(insert_invalid_utf8), _seq_defect(random_bytes),
    _meta_defect(random_bytes), _seq_defect(empty), _meta_defect(empty),
    _bad_json_line, _not_an_object, _no_id, _duplicate_record, _truncated_meta, _meta_scalar, _meta_nul,
    _deep_record, _double_bom_meta, _meta_encoding, _gzipped, _gzipped_bad_text, _short_users, _seq_utf16,
    _seq_nuls, _duplicate_user, _other_seq_ids, _wrong_encoding_flag,
)


def cases(layout: str, count: int, seed: int = 14):
    """``count`` malformed datasets of ``layout`` (``recbole`` or ``amazon``), every defect in turn."""
    rng = random.Random(seed)
    base, defects = (recbole_base, RECBOLE_DEFECTS) if layout == "recbole" else (amazon_base, AMAZON_DEFECTS)
    for i in range(count):
        defect = defects[i % len(defects)]
        out = defect(rng, base())
        files, args = out if isinstance(out, tuple) else (out, [])
        yield f"{i}:{defect.__name__}", files, args
