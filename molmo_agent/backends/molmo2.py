"""Molmo2 through native transformers (>= 5.20): AutoProcessor + AutoModelForImageTextToText.

Requests are batched with left padding (the processor's tokenizer is switched to left padding, which
decoder-only batched generation needs), the chat template places the image placeholders before the text,
and each row may stop as soon as its pointing answer is complete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import torch

from ..errors import ModelLoadError, ModelNotFoundError
from .base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .registry import ResolvedModel, missing_weights_message
from .stopping import AnswerCompleteCriteria
from .torch_setup import choose_dtype, choose_placement, dtype_name

logger = logging.getLogger(__name__)


def chat_messages(request: Request) -> list[dict]:
    """One user turn: an image entry per image, then the prompt text (Molmo2's layout)."""
    content: list[dict] = [{"type": "image"} for _ in request.images]
    content.append({"type": "text", "text": request.prompt})
    return [{"role": "user", "content": content}]


class Molmo2Backend(Backend):
    """A Molmo2 checkpoint (Hub id or local folder) running in this process."""

    def __init__(self, resolved: ResolvedModel, device: str | None = None, dtype: str | None = None) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device, placement = choose_placement(device)  # placement: a device map (device='auto')
        self.dtype = choose_dtype(dtype, self.device)
        self._lock = threading.Lock()  # one model call at a time when several threads share the model
        try:
            self.processor = AutoProcessor.from_pretrained(resolved.location)
            self.model = AutoModelForImageTextToText.from_pretrained(
                resolved.location, dtype=self.dtype, **placement
            )
        except OSError as exc:
            if resolved.is_local_dir:
                raise ModelLoadError(f"could not load Molmo2 from {resolved.location}: {exc}") from exc
            raise ModelNotFoundError(missing_weights_message(resolved.model_id)) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{resolved.model_id!r} is not a loadable Molmo2 checkpoint: {exc}") from exc
        if not placement:  # a device-mapped model is already on its GPUs
            self.model.to(self.device)
        self.model.eval()
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.info = ModelInfo(
            model_id=resolved.model_id,
            family="molmo2",
            device=str(self.device),
            dtype=dtype_name(self.dtype),
            num_parameters=sum(p.numel() for p in self.model.parameters()),
            source=resolved.location,
        )
        logger.info("loaded %s on %s (%s)", resolved.model_id, self.device, self.info.dtype)

    def prompt_text(self, request: Request) -> str:
        """The exact text the model sees before tokenisation (chat template applied)."""
        return self.processor.apply_chat_template(
            chat_messages(request), add_generation_prompt=True, tokenize=False
        )

    def preprocess(self, requests: Sequence[Request]) -> dict[str, torch.Tensor]:
        """Tokenise prompts and turn images into crops, as one left-padded batch on the model's device."""
        texts = [self.prompt_text(request) for request in requests]
        images = [image for request in requests for image in request.images]
        batch = self.processor(images=images or None, text=texts, padding=True, return_tensors="pt")
        return {
            key: value.to(self.device, dtype=self.dtype)
            if value.is_floating_point()
            else value.to(self.device)
            for key, value in batch.items()
        }

    def extra_logits_processors(self, requests: Sequence[Request], prompt_length: int) -> list:
        """Hook for subclasses that must shape the output (benchmarks and tests force a known answer)."""
        return []

    def generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        if not requests:
            return []
        with self._lock:
            return self._generate(requests, options)

    def _generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        started = time.perf_counter()
        inputs = self.preprocess(requests)
        prompt_length = inputs["input_ids"].shape[1]
        preprocessed = time.perf_counter()
        stopping = [AnswerCompleteCriteria(self.tokenizer, prompt_length)] if options.stop_at_answer else []
        sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=options.max_new_tokens,
                stopping_criteria=stopping,
                logits_processor=self.extra_logits_processors(requests, prompt_length),
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **(sampling if options.temperature > 0 else {"do_sample": False}),
            )
        finished = time.perf_counter()
        preprocess_ms = (preprocessed - started) * 1000 / len(requests)
        model_ms = (finished - preprocessed) * 1000 / len(requests)
        return [
            Generation(
                text=self.tokenizer.decode(answer, skip_special_tokens=True),
                num_generated_tokens=len(answer),
                preprocess_ms=preprocess_ms,
                model_ms=model_ms,
            )
            for answer in (self._answer_ids(row[prompt_length:]) for row in output)
        ]

    def _answer_ids(self, generated: torch.Tensor) -> list[int]:
        """The tokens a row really generated: up to and including its end token, without batch padding."""
        ids = generated.tolist()
        eos = self.tokenizer.eos_token_id
        if eos in ids:
            return ids[: ids.index(eos) + 1]
        pad = self.tokenizer.pad_token_id
        while ids and ids[-1] == pad:
            ids.pop()
        return ids
