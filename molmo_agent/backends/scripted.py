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
    """Logits processor that forces row ``i`` to emit ``answers[i]`` token by token, then lets it be
    (or, with ``end_token``, forces that token next, as a trained model ends its answer)."""

    def __init__(
        self, answers: Sequence[list[int]], prompt_length: int, end_token: int | None = None
    ) -> None:
        self.answers = [[*answer, end_token] if end_token is not None else answer for answer in answers]
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
    end_after_script: bool = False
    """True: the answer ends (end-of-turn token) after the script, like a trained model's answer.
    False: the random model keeps generating, which is what a fixed token budget pays for."""

    def extra_logits_processors(self, requests: Sequence[Request], prompt_length: int) -> list:
        answers = [self.tokenizer.encode(self.script(r), add_special_tokens=False) for r in requests]
        end = self.tokenizer.eos_token_id if self.end_after_script else None
        return [ForcedAnswerProcessor(answers, prompt_length, end)]
