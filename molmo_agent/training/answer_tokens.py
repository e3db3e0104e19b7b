"""Which answer tokens spell which coordinate digit: shared by the digit-loss meter and attention targets.

Molmo2 answers write a point as zero-padded per-mille values inside ``coords="..."`` (``1 1 361 799`` is
frame 1, point 1, x 361, y 799; further points add ``2 100 200`` ...). Tokenizers may merge characters,
so the mapping goes through the decoded text of each token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COORDS = re.compile(r'coords="([^"]*)"')
PLACES = ("hundreds", "tens", "units")
VALUE = "value"
"""The place of a coordinate written as one token (the ``numbers`` tokenizer): all three digits at once."""


@dataclass(frozen=True)
class DigitToken:
    """One coordinate digit that is a token of its own, or a whole coordinate that is one token."""

    token: int
    """Index of the token among the answer's tokens."""
    point: int
    """Which point of the answer (0-based, in order of appearance) the digit belongs to."""
    place: str
    """``hundreds``, ``tens``, ``units``, or ``value`` for a three-digit coordinate token."""
    axis: int
    """0 for a digit of the point's x, 1 for one of its y."""


def coordinate_digit_tokens(pieces: list[str]) -> list[DigitToken]:
    """The coordinate digits among an answer's tokens, given each token's decoded text.

    Only three-digit numbers count (x and y; frame and point indices are not padded), and only digits that
    are a token alone (a tokenizer that merged "36" would give no per-digit reading) or whole numbers that
    are one token (place ``value``). Points are numbered across every ``coords`` attribute of the answer,
    an x and a y per point.
    """
    text, owner = "", []
    for index, piece in enumerate(pieces):
        text += piece
        owner += [index] * len(piece)
    found: list[DigitToken] = []
    values = 0
    for match in _COORDS.finditer(text):
        offset = match.start(1)
        for number in re.finditer(r"\d+", match.group(1)):
            if len(number.group()) != 3:
                continue
            token = owner[offset + number.start()]
            if pieces[token].strip() == number.group():
                found.append(DigitToken(token, values // 2, VALUE, values % 2))
                values += 1
                continue
            for place, char_index in zip(PLACES, range(number.start(), number.end()), strict=True):
                token = owner[offset + char_index]
                if len(pieces[token].strip()) == 1:
                    found.append(DigitToken(token, values // 2, place, values % 2))
            values += 1
    return found


def decoded_pieces(token_ids: list[int], tokenizer) -> list[str]:
    return [tokenizer.decode([int(t)]) for t in token_ids]
