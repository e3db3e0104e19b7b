"""What we ask the model, per family and task.

Prompt *wording* lives here; prompt *wrapping* (chat template for Molmo2, `` User: ... Assistant:`` for v1)
is done by each family's processor inside the backends, so the two never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import QueryError

MAX_QUERY_CHARS = 2000
"""Longer queries are almost certainly a bug on the caller's side (and cost prefill time)."""
MAX_TEXT_TOKENS = 1024
"""Tokens of one request's prompt text (its wording, before the images): what prefill really pays for.
Characters alone do not bound it: 2,000 emoji pass the character limit and cost several thousand tokens."""


@dataclass(frozen=True)
class PromptTemplates:
    """The wording one family was trained on."""

    point_one: str
    point_all: str
    count: str


TEMPLATES: dict[str, PromptTemplates] = {
    # Molmo v1 (PixMo-Points): "point to {object}", counting as "How many ... are there?".
    "molmo1": PromptTemplates(
        point_one="Point to {query}", point_all="Point to all {query}", count="How many {query} are there?"
    ),
    # Molmo2 keeps the same phrasing for images; answers come back as <points coords=...>.
    "molmo2": PromptTemplates(
        point_one="Point to the {query}.",
        point_all="Point to all the {query}.",
        count="How many {query} are there?",
    ),
}


def clean_query(query: str, what: str = "query", *, keep_period: bool = False) -> str:
    """Validate a user query: a non-empty, reasonably short string, whitespace collapsed.

    The trailing full stop is dropped from object queries (templates add their own) but kept in goals,
    which the models saw verbatim during fine-tuning.
    """
    if not isinstance(query, str):
        raise QueryError(f"the {what} must be a string, got {type(query).__name__}")
    text = " ".join(query.split())
    if not keep_period:
        text = text.rstrip(".")
    if not text:
        raise QueryError(f"the {what} is empty: say what to point at, e.g. 'the red mug'")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the {what} has {len(text)} characters; keep it under {MAX_QUERY_CHARS}")
    return text


def _templates(family: str) -> PromptTemplates:
    try:
        return TEMPLATES[family]
    except KeyError:
        raise ValueError(f"no prompts for model family {family!r}; known: {sorted(TEMPLATES)}") from None


def _strip_article(query: str) -> str:
    """'the red mug' -> 'red mug', so templates that add their own article do not double it."""
    first, _, rest = query.partition(" ")
    return rest if first.lower() in ("the", "a", "an") and rest else query


def echoed_label(query: str) -> str:
    """The label Molmo writes after a point's coordinates: the queried object, without its article.

    Closes an answer whose decoding stopped right after its coordinates (``parsing.complete_cut_answer``).
    """
    return _strip_article(clean_query(query))


def point_prompt(query: str, family: str, *, all_occurrences: bool = False) -> str:
    """Ask for one object (the model may still return several) or for every occurrence."""
    templates = _templates(family)
    template = templates.point_all if all_occurrences else templates.point_one
    text = clean_query(query)
    return template.format(query=_strip_article(text) if "the {query}" in template else text)


def count_prompt(query: str, family: str) -> str:
    """Counting: Molmo answers with points for each instance and then the number."""
    return _templates(family).count.format(query=_strip_article(clean_query(query)))


def act_prompt(goal: str, step: str | None = None) -> str:
    """Molmo's AndroidControl format: ``high_level: {goal} low_level: {step}`` (low-level) or the goal only.

    The same for both families: it is the string the models were fine-tuned on.
    """
    text = f"high_level: {clean_query(goal, 'goal', keep_period=True)}"
    if step is not None and step.strip():
        text += f" low_level: {clean_query(step, 'step instruction', keep_period=True)}"
    return text


def free_prompt(prompt: str) -> str:
    """Free-form prompts are passed through; only emptiness and length are checked."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise QueryError("the prompt is empty: pass the question or instruction for the model")
    if len(prompt) > MAX_QUERY_CHARS * 4:
        raise QueryError(f"the prompt has {len(prompt)} characters; keep it under {MAX_QUERY_CHARS * 4}")
    return prompt
