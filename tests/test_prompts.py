"""Prompt wording per family and task, and query validation."""

from __future__ import annotations

import pytest

from molmo_agent import prompts
from molmo_agent.errors import QueryError


@pytest.mark.parametrize(
    ("family", "all_occurrences", "expected"),
    [
        ("molmo2", False, "Point to the red mug."),
        ("molmo2", True, "Point to all the red mug."),
        ("molmo1", False, "Point to the red mug"),
        ("molmo1", True, "Point to all the red mug"),
    ],
)
def test_point_prompt(family, all_occurrences, expected):
    assert prompts.point_prompt("the red mug.", family, all_occurrences=all_occurrences) == expected


def test_point_prompt_keeps_queries_without_an_article():
    assert prompts.point_prompt("  red   mug ", "molmo2") == "Point to the red mug."


def test_count_prompt():
    assert prompts.count_prompt("the mugs", "molmo2") == "How many mugs are there?"


def test_act_prompt_is_molmos_android_control_format():
    assert prompts.act_prompt("Turn on Wi-Fi.") == "high_level: Turn on Wi-Fi."
    assert (
        prompts.act_prompt("Turn on Wi-Fi.", "Tap Settings.")
        == "high_level: Turn on Wi-Fi. low_level: Tap Settings."
    )
    assert prompts.act_prompt("Turn on Wi-Fi.", "  ") == "high_level: Turn on Wi-Fi."


@pytest.mark.parametrize("bad", ["", "   ", "...", None, 42])
def test_bad_queries_are_clear_errors(bad):
    with pytest.raises(QueryError):
        prompts.point_prompt(bad, "molmo2")


def test_overlong_query_is_rejected():
    with pytest.raises(QueryError, match="characters"):
        prompts.point_prompt("x" * (prompts.MAX_QUERY_CHARS + 1), "molmo2")


def test_unknown_family_is_a_bug_not_a_silent_default():
    with pytest.raises(ValueError, match="no prompts"):
        prompts.point_prompt("mug", "llava")


def test_free_prompt_passes_text_through_but_rejects_empty():
    assert prompts.free_prompt("  Describe this image. ") == "  Describe this image. "
    with pytest.raises(QueryError):
        prompts.free_prompt(" \n")
