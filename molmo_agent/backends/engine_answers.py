"""Make an engine's answer end where the in-process backend's would, so both read the same.

In process, a point query stops at the first token whose decoded answer has complete coordinates
(``GenerationOptions.stop_at_coords``; ``stopping.AnswerCompleteCriteria``), and the reader closes the cut
tag with the query as its label (``parsing.complete_cut_answer``). An engine is asked to stop there too,
with stop sequences, but engines differ: vLLM and SGLang leave the matched stop sequence out of the text
(the OpenAI convention), ``transformers serve`` keeps it (and fails on stop sequences for models whose
tokenizer sits inside a processor, Molmo2's case), and an engine without stop support writes the whole
answer, label included. :func:`cut_like_local` turns each of these into a text that closes exactly like
the in-process one: the stop sequence put back when it was left out, then the answer cut at the first point
where the in-process stopping rule would have fired.
"""

from __future__ import annotations

from ..parsing import answer_is_complete, coords_are_complete
from .base import GenerationOptions

COORD_STOPS = {
    # Molmo2: <points coords="1 1 156 104">label</points>: the coordinates end with the attribute's quote.
    "molmo2": ('">',),
    # Molmo v1: <point x="61.5" y="40.4" alt="red mug">red mug</point> (or x1 y1 x2 y2 ... alt=).
    "molmo1": (" alt=", '">'),
}
CLOSING_STOPS = ("</points>", "</point>", "</tracks>")


def stop_sequences(family: str, options: GenerationOptions) -> tuple[str, ...]:
    """What to send as ``stop`` for these options: nothing unless the in-process backend would stop early."""
    if options.stop_at_coords:
        return COORD_STOPS.get(family, ())
    if options.stop_at_answer:
        return CLOSING_STOPS
    return ()


def cut_like_local(
    text: str,
    options: GenerationOptions,
    *,
    stops: tuple[str, ...] = (),
    finish_reason: str | None = None,
    stop_reason: object = None,
    reports_stop_reason: bool = False,
) -> str:
    """The engine's answer as the in-process backend would have ended it (see the module docstring).

    ``stops`` are the stop sequences that were sent; ``stop_reason`` is vLLM's report of which one matched
    (``None`` for an end-of-sequence token), used when ``reports_stop_reason`` says the engine sent one.
    """
    if not (options.stop_at_coords or options.stop_at_answer):
        return text
    complete = coords_are_complete if options.stop_at_coords else answer_is_complete
    if not complete(text) and finish_reason == "stop" and stops:
        if reports_stop_reason:
            candidates = (stop_reason,) if isinstance(stop_reason, str) else ()
        else:
            candidates = stops
        for stop in candidates:
            if complete(text + stop):
                text += stop
                break
    return _shortest_complete_prefix(text, complete)


def _shortest_complete_prefix(text: str, complete) -> str:
    """Cut a tag answer right where it became complete; other answers ("There are none.") stay whole."""
    start = text.find("<")
    if start < 0 or not complete(text):
        return text
    for end in range(start + 1, len(text) + 1):
        if complete(text[:end]):
            return text[:end]
    return text  # pragma: no cover - complete(text) holds, so the loop returns
