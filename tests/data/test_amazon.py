"""Amazon/Yelp layout: sequential_data.txt + item metadata in each JSON shape the loader accepts."""

from __future__ import annotations

import gzip
import json

import pytest

from rl4rec_core.data import load_dataset, prepare_dataset
from rl4rec_core.errors import ConfigError, DataError

SEQS = "u1 B1 B2 B3 B4\nu2 B3 B1 B2\n\nu3 B4 B1\n"  # u3 has only 2 items; one blank line
RECORDS = {
    "B1": {"title": "Rose Lip Balm", "brand": "Acme", "categories": [["Beauty", "Lips"], ["Beauty", "Care"]],
           "description": "Soft <b>balm</b>."},
    "B2": {"title": "Night Cream", "category": ["Beauty", "Skin"], "description": ["Rich.", "Unscented."]},
    "B3": {"title": "Shampoo", "brand": None, "price": 3.5},
    "B4": {"title": "Nail File", "brand": "Acme", "categories": "Tools, Nails"},
    "B9": {"title": "Never bought"},
}


def write_layout(folder, seqs=SEQS, meta_name="meta.json", meta_text=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sequential_data.txt").write_text(seqs)
    if meta_text is not None:
        (folder / meta_name).write_text(meta_text)
    return folder


def as_json_lines(records, id_field="asin"):
    return "\n".join(json.dumps({id_field: k, **v}) for k, v in records.items()) + "\n"


def check_beauty(ds):
    # non-numeric ids keep metadata order; B9 is never bought so it leaves the catalogue
    assert ds.items["item_id"].tolist() == ["B1", "B2", "B3", "B4"]
    assert ds.items.columns.tolist() == ["item_idx", "item_id", "title", "brand", "categories", "description"]
    first = ds.items.iloc[0]
    assert first["categories"] == "Beauty, Lips, Care"
    assert first["description"] == "Soft balm."
    assert ds.items.iloc[1]["description"] == "Rich. Unscented."
    assert ds.items.iloc[2]["brand"] == ""
    assert ds.sequences["user_id"].tolist() == ["u1", "u2"]
    assert [list(s) for s in ds.sequences["items"]] == [[0, 1, 2, 3], [2, 0, 1]]
    assert ds.meta["dropped"] == {"blank_lines": 1, "users_with_fewer_than_3_items": 1,
                                  "interactions_of_those_users": 2, "items_without_interactions": 1}
    assert ds.meta["item_text_template"] == "amazon"


def test_mapping_metadata(rl4rec_dirs, tmp_path):
    src = write_layout(tmp_path / "beauty", meta_text=json.dumps(RECORDS))
    prepare_dataset("beauty", source=src)
    check_beauty(load_dataset("beauty"))


def test_json_lines_with_asin_given_by_meta_flag(rl4rec_dirs, tmp_path):
    src = write_layout(tmp_path / "beauty")
    meta = tmp_path / "elsewhere.jsonl"
    meta.write_text(as_json_lines(RECORDS))
    prepare_dataset("beauty", source=src / "sequential_data.txt", fmt="amazon", meta=meta)
    check_beauty(load_dataset("beauty"))


def test_gzipped_python_literal_lines_and_item_id_field(rl4rec_dirs, tmp_path):
    src = write_layout(tmp_path / "beauty")
    lines = [repr({"item_id": k, **v}) for k, v in RECORDS.items()]  # the 2014 dumps' style
    with gzip.open(src / "meta_Beauty.json.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    prepare_dataset("beauty", source=src)
    check_beauty(load_dataset("beauty"))


def test_yelp_business_records(rl4rec_dirs, tmp_path):
    src = write_layout(tmp_path / "yelp", seqs="x b1 b2 b1\n",
                       meta_text=as_json_lines({"b1": {"name": "Pizza Place", "categories": "Restaurants, Pizza"},
                                                "b2": {"name": "Barber", "categories": None}}, "business_id"))
    prepare_dataset("yelp", source=src)
    ds = load_dataset("yelp")
    assert ds.item_titles == ["Pizza Place", "Barber"]
    assert ds.item_texts() == ["Pizza Place. Categories: Restaurants, Pizza", "Barber"]
    assert list(ds.sequences["items"][0]) == [0, 1, 0]  # repeats are real interactions, kept


@pytest.mark.parametrize("seqs, meta_text, message", [
    (SEQS, json.dumps({**RECORDS, "B2": "just a string"}), r"record 2 is a str, not an object"),
    (SEQS, '{"asin": "B1", "title": "x"}\n{"title": "no id"}\n', r"record 2 has no id field \(asin, item_id, business_id\)"),
    (SEQS, '{"asin": "B1", "title": "x"}\n{"asin": "B2", "title": \n', r"meta.json:2: not a JSON record"),
    (SEQS, as_json_lines(RECORDS) + json.dumps({"asin": "B1", "title": "again"}) + "\n", r"e.g. B1"),
    (SEQS, "   \n", r"meta.json is empty"),
    ("u1 B1 B2 B3\nu1 B4 B1 B2\n", json.dumps(RECORDS), r"user\(s\) u1 have more than one sequence"),
    ("1 1 2 3\n2 3 1 2\n", json.dumps(RECORDS), r"6 of 6 interactions .* different item ids"),
    ("\n\n", json.dumps(RECORDS), r"sequential_data.txt: no interactions"),
    ("u1\nu2 B1\n", json.dumps(RECORDS), r"no user has 3 or more known items"),
])
def test_bad_input_is_a_clear_error(rl4rec_dirs, tmp_path, seqs, meta_text, message):
    src = write_layout(tmp_path / "beauty", seqs=seqs, meta_text=meta_text)
    with pytest.raises(DataError, match=message) as e:
        prepare_dataset("beauty", source=src)
    assert "Fix:" in str(e.value)
    assert not (rl4rec_dirs["data"] / "beauty").exists()


def test_missing_metadata_and_source(rl4rec_dirs, tmp_path):
    src = write_layout(tmp_path / "beauty")
    with pytest.raises(DataError, match=r"no item metadata in .*beauty.*--meta"):
        prepare_dataset("beauty", source=src)
    with pytest.raises(DataError, match=r"--source .*nowhere does not exist"):
        prepare_dataset("beauty", source=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"'beauty' needs --source"):
        prepare_dataset("beauty")
