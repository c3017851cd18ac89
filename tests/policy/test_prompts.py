"""Prompt templates: last-N history, the original's two templates, chat formatting, bad input."""

from __future__ import annotations

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.prompts import EMPTY_HISTORY, PROMPT_TEMPLATES, build_prompts, render_prompt
from tests.helpers.tiny_lm import make_tiny_tokenizer

HISTORY = [f"Movie {i} (199{i}). Genres: Drama" for i in range(8)]


def test_default_template_numbers_the_last_n_items_oldest_first():
    text = render_prompt(HISTORY, "next_item", history_len=3, item_noun="movie")
    assert "1. Movie 5 (1995)" in text and "3. Movie 7 (1997)" in text
    assert "Movie 4" not in text
    assert text.startswith("Movies the user liked") and "title, year and genres" in text


def test_default_template_sets_a_recommender_system_message():
    tok = make_tiny_tokenizer(chat=True)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    (prompt,) = build_prompts([["Heat (1995)"]], tok, item_noun="movie")
    assert prompt.startswith("<system> You are a movie recommender.")
    (prompt,) = build_prompts([["Heat (1995)"]], tok, item_noun="movie", system="Be brief.")
    assert prompt.startswith("<system> Be brief. <user> Movies the user liked")


def test_compelling_template_is_the_originals_example():
    text = render_prompt(HISTORY, "compelling")
    # the original: last 5 purchases, comma separated, "a compelling description"
    assert "- Recent purchases: " + ", ".join(HISTORY[-5:]) in text
    assert text.endswith("Generate a compelling description for the next recommended product:")
    assert PROMPT_TEMPLATES["compelling"].history_len == 5


def test_plain_template_and_custom_format_string():
    assert render_prompt(["A", "B"], "plain", item_noun="product") == "User history: A, B\nNext product:"
    assert render_prompt(["A", "B", "C"], "Seen {n}: {history} ->", history_len=2) == "Seen 2: B, C ->"


def test_response_prefix_starts_the_answer():
    prefix = 'The user will like the {item_noun} "'
    chat = build_prompts([["Toy Story"]], make_tiny_tokenizer(chat=True), "plain", item_noun="movie",
                         response_prefix=prefix)
    assert chat == ['<user> User history: Toy Story\nNext movie: <assistant>The user will like the movie "']
    plain = build_prompts([["Toy Story"]], make_tiny_tokenizer(chat=False), "plain", response_prefix="{x} 1.")
    assert plain == ["User history: Toy Story\nNext item: {x} 1."]


def test_empty_history_is_said_not_left_blank():
    assert EMPTY_HISTORY in render_prompt([], "plain")


def test_chat_template_applied_only_when_the_tokenizer_has_one():
    chat = build_prompts([["Toy Story"]], make_tiny_tokenizer(chat=True), "plain")
    assert chat == ["<user> User history: Toy Story\nNext item: <assistant>"]
    plain = build_prompts([["Toy Story"]], make_tiny_tokenizer(chat=False), "plain")
    assert plain == ["User history: Toy Story\nNext item:"]
    assert build_prompts([["Toy Story"]], None, "plain") == plain
    with pytest.raises(ConfigError, match="no chat template"):
        build_prompts([["Toy Story"]], make_tiny_tokenizer(chat=False), use_chat_template=True)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: render_prompt(["A"], "fancy"), "unknown prompt template"),
        (lambda: render_prompt(["A"], "{history} {user}"), "unknown field"),
        (lambda: render_prompt(["A"], "plain", history_len=0), "history_len"),
        (lambda: build_prompts(["Product A", "Product B"]), "list of histories"),
    ],
)
def test_bad_input_is_explained(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_item_noun_follows_the_dataset():
    from rl4rec_core.policy.prompts import item_noun_for

    assert item_noun_for("ml-100k") == "movie"
    assert item_noun_for("beauty") == "product" and item_noun_for("yelp") == "business"
    assert item_noun_for("my-shop") == "item"
