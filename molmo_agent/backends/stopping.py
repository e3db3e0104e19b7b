"""Stop generation when a pointing answer is complete instead of at a fixed token budget."""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from ..parsing import answer_is_complete, coords_are_complete


class AnswerCompleteCriteria(StoppingCriteria):
    """Marks a row done once its decoded answer is complete (a closed pointing tag, "There are none."),
    or with ``coords_only`` as soon as its coordinates are (``parsing.coords_are_complete``).

    Only the generated part of each row is decoded (the prompt is skipped by ``prompt_length``), and rows
    already done are not decoded again, so the cost per step stays a small string check per live row.
    """

    def __init__(self, tokenizer, prompt_length: int, *, coords_only: bool = False) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self._complete = coords_are_complete if coords_only else answer_is_complete
        self._done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self._done is None:
            self._done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if not self._done[row]:
                answer = self.tokenizer.decode(input_ids[row, self.prompt_length :], skip_special_tokens=True)
                self._done[row] = self._complete(answer)
        return self._done.clone()


class MaxNewTokensCriteria(StoppingCriteria):
    """Stops every row after ``limit`` new tokens, without changing the cache size a budget implies
    (warm-up runs the shapes of real requests for a few steps only)."""

    def __init__(self, prompt_length: int, limit: int) -> None:
        self.prompt_length = prompt_length
        self.limit = limit

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = input_ids.shape[1] - self.prompt_length >= self.limit
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)
