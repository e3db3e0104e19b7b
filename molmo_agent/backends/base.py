"""The small interface every model backend implements.

A backend turns (images, prompt) pairs into answer text, batched. Everything that knows Molmo's prompt
wording or answer formats lives above it (``prompts``, ``parsing``); everything that knows transformers
lives below it. That split keeps backends swappable (local transformers today, a remote server later).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from ..errors import QueryError
from ..text_guard import MOLMO_SPECIAL_TOKENS


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is and where it runs; shown by the CLI and returned by the server."""

    model_id: str
    family: str
    """``"molmo2"`` or ``"molmo1"``: decides the prompt layout and the coordinate format of answers."""
    device: str
    dtype: str
    num_parameters: int
    source: str
    """The local folder the weights were read from."""
    quantize: str | None = None
    """``"int8"`` / ``"int4"`` when the linear weights were quantized after loading (``dtype`` is then the
    activations' and the remaining weights'), ``None`` for full-precision weights."""


MIN_TEMPERATURE = 0.01
"""Below this, logits divided by the temperature overflow float32 and sampling fails (1e-45 did); 0 is
greedy decoding, which is what a tiny temperature means anyway."""
MAX_TEMPERATURE = 2.0
"""OpenAI's upper bound; hotter sampling only garbles coordinates."""


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings for one batched call.

    ``stop_at_answer`` ends a row as soon as its answer is complete (a closed pointing tag), so a pointing
    query pays for the ~20 tokens of its answer, not the whole budget. Greedy decoding is the default
    because pointing answers are extractive and reproducibility matters more than variety.

    ``stop_at_coords`` ends a row even earlier, once its tag's coordinates are written (the label that
    follows is the query echoed; see ``parsing.coords_are_complete``). The text then ends inside the tag:
    readers close it with ``parsing.complete_cut_answer`` before parsing. Backends that cannot stop there
    fall back to ``stop_at_answer``'s closing tag, which reads the same.
    """

    max_new_tokens: int = 200
    stop_at_answer: bool = False
    stop_at_coords: bool = False
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        temperature = self.temperature
        if not (temperature == 0 or MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
            raise ValueError(
                f"temperature must be 0 (greedy) or within {MIN_TEMPERATURE}-{MAX_TEMPERATURE}, "
                f"got {temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Request:
    """One prompt about one or more images (already decoded to RGB)."""

    images: tuple[Image.Image, ...]
    prompt: str

    def __post_init__(self) -> None:
        if not self.prompt or not self.prompt.strip():
            raise QueryError("the prompt is empty: pass a non-empty query or prompt text")


@dataclass(frozen=True)
class Generation:
    """One answer plus the numbers a caller needs to see where the time went."""

    text: str
    num_generated_tokens: int
    preprocess_ms: float
    model_ms: float


class Backend(ABC):
    """A loaded model that answers batches of requests.

    Implementations must return one :class:`Generation` per request, in order, and give the same text for a
    request whether it is sent alone or inside a batch (greedy decoding).
    """

    info: ModelInfo

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def special_tokens(self) -> frozenset[str]:
        """Strings caller text may not contain (``text_guard``); without a local tokenizer, Molmo's list."""
        return MOLMO_SPECIAL_TOKENS

    def count_tokens(self, text: str) -> int | None:
        """Tokens ``text`` costs in a prompt, or ``None`` when only the server or engine behind this
        backend can tell (it enforces its own limit then)."""
        return None

    @abstractmethod
    def generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        """Answer every request; raises only for bugs or resource errors, never for odd model text."""
