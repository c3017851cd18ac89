"""Matching a served user's history against the catalogue (tasks/history_index.py), by hand-made cases."""

from __future__ import annotations

from tasks.history_index import HistoryIndex

# ML-100k holds "Cape Fear" twice (1962 and 1991) and "Body Snatchers" twice (1993 both)
TITLES = ["Toy Story", "Cape Fear", "Cape Fear", "Body Snatchers", "Body Snatchers", "1984"]
YEARS = ["1995", "1962", "1991", "1993", "1993", "1984"]


def test_a_title_with_or_without_its_year_case_and_spaces_aside():
    index = HistoryIndex(TITLES, YEARS)
    assert index.match("Toy Story (1995)") == [0] == index.match("toy  story") == index.match(" Toy Story(1995) ")
    assert index.match("Toy Story (1996)") == []  # another year is another film


def test_every_item_of_a_repeated_title_is_masked():
    index = HistoryIndex(TITLES, YEARS)
    assert index.match("Cape Fear") == [1, 2] and index.match("Cape Fear (1991)") == [2]
    assert index.match("Body Snatchers (1993)") == [3, 4]


def test_a_catalogue_without_years_matches_the_title_alone():
    assert HistoryIndex(TITLES).match("Cape Fear (1962)") == [1, 2]


def test_a_title_that_looks_like_a_year_is_a_title():
    assert HistoryIndex(TITLES, YEARS).match("1984") == [5]


def test_resolve_masks_ids_and_titles_once_and_reports_what_names_nothing():
    masked, unknown = HistoryIndex(TITLES, YEARS).resolve(["Cape Fear", "Heat (1995)", "Toy Story"], ids=[0, 99, -1])
    assert masked == [0, 1, 2] and unknown == ["99", "-1", "Heat (1995)"]
