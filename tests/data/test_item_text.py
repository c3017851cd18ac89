"""Item text templates: names, auto choice, user format strings, clean rendering of missing fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rl4rec_core.data.item_text import TEMPLATES, choose_template, render_item_texts, template_text
from rl4rec_core.errors import ConfigError


def movies():
    return pd.DataFrame({
        "item_id": ["1", "2", "3", "4"],
        "title": ["Toy Story", "Mr. Bean.", "Good Morning", None],
        "year": ["1995", "", "1971", np.nan],
        "genres": ["Animation, Children's, Comedy", "Comedy", "", None],
    })


def test_movielens_template_and_missing_fields():
    assert render_item_texts(movies()) == [
        "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "Mr. Bean. Genres: Comedy",  # no "()" for the missing year, no ".." after the title
        "Good Morning (1971)",
        "Item 4",  # nothing to say: the id, never "None (nan)"
    ]


def test_amazon_template_truncates_description():
    df = pd.DataFrame({
        "item_id": ["a", "b"], "title": ["Lip Balm", ""], "brand": ["Acme", "Zed"],
        "categories": ["Beauty, Lips", ""], "description": ["soft " * 200, None],
    })
    first, second = render_item_texts(df)
    assert first.startswith("Lip Balm. Brand: Acme. Categories: Beauty, Lips. soft soft")
    assert first.endswith("soft…") and len(first) < 60 + 300
    assert second == "Brand: Zed"  # no leading ". " when the title is missing


def test_auto_choice_and_named_templates():
    assert choose_template(["item_id", "title", "year", "genres"]) == "movielens"
    assert choose_template(["item_id", "title", "brand"]) == "amazon"
    assert choose_template(["item_id", "title", "city"]) == "title"
    assert render_item_texts(movies(), "title")[:2] == ["Toy Story", "Mr. Bean."]
    assert template_text("movielens") == TEMPLATES["movielens"]
    assert template_text("auto", ["title", "year", "genres"]) == TEMPLATES["movielens"]


def test_user_format_string_with_optional_parts_and_literal_brackets():
    fmt = "[[{year}]] {title}[ - {genres}]"
    assert template_text(fmt) == fmt
    assert render_item_texts(movies(), fmt)[:3] == [
        "[1995] Toy Story - Animation, Children's, Comedy", "[] Mr. Bean. - Comedy", "[1971] Good Morning"]


@pytest.mark.parametrize("template, message", [
    ("fancy", r"unknown item text template 'fancy'"),
    ("{title} by {brand}", r"uses brand, which the item table lacks"),
    ("{title}[ ({year})", r"'\[' is never closed"),
    ("{title}] x", r"unbalanced '\]'"),
    ("{title", r"not a valid format string"),
])
def test_bad_templates(template, message):
    with pytest.raises(ConfigError, match=message):
        render_item_texts(movies(), template)


def test_auto_needs_columns():
    with pytest.raises(ConfigError, match="auto"):
        template_text("auto")
