"""What a backend's tokenizer knows about caller text: its special tokens and what text costs in tokens.

Limits on text are counted in tokens because tokens are what prefill pays for: 2,000 emoji are 2,000
characters but several thousand tokens. Counting uses a private copy of the fast tokenizer, because the model
thread changes the shared tokenizer's padding state on every batch and Hugging Face's Rust tokenizers refuse
("Already borrowed") to be used from two threads while one of them reconfigures it.
"""

from __future__ import annotations

import threading
from typing import Any

from ..text_guard import MOLMO_SPECIAL_TOKENS, tokenizer_special_tokens


class TokenizerText:
    """Special tokens and token counts of one Hugging Face tokenizer (thread-safe)."""

    def __init__(self, tokenizer: Any) -> None:
        self.special_tokens: frozenset[str] = tokenizer_special_tokens(tokenizer) | MOLMO_SPECIAL_TOKENS
        self._lock = threading.Lock()
        self._fast = _private_fast_tokenizer(tokenizer)
        self._slow = tokenizer if self._fast is None else None

    def count(self, text: str) -> int:
        """Tokens ``text`` becomes inside a prompt (no special tokens added)."""
        with self._lock:
            if self._fast is not None:
                return len(self._fast.encode(text, add_special_tokens=False).ids)
            return len(self._slow.encode(text, add_special_tokens=False))


def _private_fast_tokenizer(tokenizer: Any):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    private = Tokenizer.from_str(backend.to_str())
    private.no_padding()
    private.no_truncation()
    return private
