"""Text that reaches a model's tokenizer: special tokens refused before any prompt is built.

A query holding one of the tokenizer's special tokens is not text to the model. The processor counts the
image placeholders (``<|image|>``, ``<im_patch>``, ...) in the prompt to place image features, so one stray
placeholder makes the model call raise, and a turn marker (``<|im_end|>``) rewrites the conversation. Every
text field a caller sends (library or gRPC) is checked here first, so the caller gets a
:class:`~molmo_agent.errors.QueryError` naming the field and the token instead of a failed model call.

The set comes from the loaded tokenizer where there is one (:func:`tokenizer_special_tokens`); backends
without a local tokenizer (``grpc://``, ``openai://``) use :data:`MOLMO_SPECIAL_TOKENS` plus any
``<|...|>`` control token, a conservative list of what Molmo's tokenizers treat specially.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import QueryError

MOLMO_CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""The chat-template tokens (``<|im_end|>`` ends every Molmo2 answer)."""
MOLMO_IMAGE_TOKENS = (
    "<im_start>",
    "<im_end>",
    "<im_patch>",
    "<im_col>",
    "<low_res_im_start>",
    "<frame_start>",
    "<frame_end>",
    "<im_low>",
    "<|image|>",
    "<|video|>",
)
"""Molmo2's image/video special tokens, in the order a Molmo2 tokenizer assigns their ids."""
MOLMO_SPECIAL_TOKENS: frozenset[str] = frozenset(MOLMO_CHAT_TOKENS + MOLMO_IMAGE_TOKENS)
"""Molmo v1's and Molmo2's image and chat tokens (Molmo2's tokenizer carries all of them)."""

CONTROL_TOKEN = r"<\|[^<>|\s]{1,64}\|>"
"""Qwen/OLMo-style control tokens (``<|im_start|>``, ``<|vision_start|>``, ...): never ordinary text."""


def tokenizer_special_tokens(tokenizer: Any) -> frozenset[str]:
    """The strings a Hugging Face tokenizer turns into special or markup tokens.

    Every special token counts, and so does every added token that is not plain words or digits: Molmo2's
    tokenizer adds the coordinates ``000`` ... ``999`` as ordinary added tokens, which queries such as
    "the item 250" legitimately contain, while added markup such as ``<think>`` steers the model.
    """
    found = {str(token) for token in getattr(tokenizer, "all_special_tokens", ())}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for added in decoder.values():
        content = str(getattr(added, "content", added))
        if getattr(added, "special", False) or not _plain(content):
            found.add(content)
    return frozenset(token for token in found if token.strip())


def _plain(token: str) -> bool:
    return all(part.isalnum() for part in token.split()) and bool(token.strip())


@dataclass(frozen=True)
class TextGuard:
    """Finds special tokens in caller text; one compiled pattern, shared by every request."""

    special_tokens: frozenset[str] = MOLMO_SPECIAL_TOKENS
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = sorted(set(self.special_tokens) | MOLMO_SPECIAL_TOKENS, key=len, reverse=True)
        alternatives = [CONTROL_TOKEN, *(re.escape(token) for token in tokens)]
        object.__setattr__(self, "_pattern", re.compile("|".join(alternatives)))

    @classmethod
    def of(cls, tokens: Iterable[str]) -> TextGuard:
        return cls(frozenset(tokens))

    def find(self, text: str) -> str | None:
        """The first special token in ``text``, or ``None``."""
        match = self._pattern.search(text)
        return match.group(0) if match else None

    def check(self, text: str, field_name: str) -> None:
        """Refuse ``text`` when it holds a special token; ``field_name`` is what the caller called it.

        Raises:
            QueryError: The text contains a special token (the message names the field and the token).
        """
        token = self.find(text)
        if token is not None:
            raise QueryError(
                f"the {field_name} contains {token!r}, which the model's tokenizer reads as a special token "
                "(an image placeholder or chat marker), not as text; remove it"
            )
