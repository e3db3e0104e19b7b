"""A real Molmo2 whose answer text is forced: for benchmarks and end-to-end tests of coordinate mapping.

Random-weight checkpoints never emit a closed pointing tag, so they cannot show that a point travels to
the right pixel or that generation stops at the closing tag. This backend runs the real model (every
preprocessing step, forward pass and decode step happens) but a logits processor overrides the choice of
each token so the answer begins with a scripted text. After the script the model continues freely, which
is what a fixed-budget decoder would pay for. It is a test instrument at the model's output edge, not a
model: nothing in the library uses it by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .base import Request
from .molmo2 import Molmo2Backend

Script = Callable[[Request], str]


class ForcedAnswerProcessor:
    """Logits processor that forces row ``i`` to emit ``answers[i]`` token by token, then lets it be."""

    def __init__(self, answers: Sequence[list[int]], prompt_length: int) -> None:
        self.answers = answers
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        for row, answer in enumerate(self.answers):
            if step < len(answer):
                scores[row] = torch.finfo(scores.dtype).min
                scores[row, answer[step]] = 0.0
        return scores


class ScriptedMolmo2Backend(Molmo2Backend):
    """Molmo2Backend whose answers start with ``script(request)``."""

    script: Script = staticmethod(lambda request: "")

    def extra_logits_processors(self, requests: Sequence[Request], prompt_length: int) -> list:
        answers = [self.tokenizer.encode(self.script(r), add_special_tokens=False) for r in requests]
        return [ForcedAnswerProcessor(answers, prompt_length)]
