"""Molmo2 through native transformers (>= 5.20): AutoProcessor + AutoModelForImageTextToText.

Requests are batched with left padding (the processor's tokenizer is switched to left padding, which
decoder-only batched generation needs), the chat template places the image placeholders before the text,
and each row may stop as soon as its pointing answer is complete (or, for point queries, as soon as its
coordinates are).

``optimize=True`` is the fast path for serving: SDPA attention, a static KV cache with a compiled decode
step (CUDA graphs on a GPU; see ``fast_decode``) and a cache of vision features for repeated frames (see
``vision_cache``). Greedy outputs are the same as the plain path's, token for token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import torch

from ..errors import ModelLoadError, ModelNotFoundError
from .base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .fast_decode import FastDecodeConfig, FastDecoder
from .quantize import check_quantize, quantization_config, quantize_model
from .registry import ResolvedModel, missing_weights_message
from .stopping import AnswerCompleteCriteria, MaxNewTokensCriteria
from .token_tools import TokenizerText
from .torch_setup import choose_dtype, choose_placement, dtype_name
from .vision_cache import DEFAULT_ENTRIES, VisionFeatureCache

logger = logging.getLogger(__name__)


def chat_messages(request: Request) -> list[dict]:
    """One user turn: an image entry per image, then the prompt text (Molmo2's layout)."""
    content: list[dict] = [{"type": "image"} for _ in request.images]
    content.append({"type": "text", "text": request.prompt})
    return [{"role": "user", "content": content}]


class Molmo2Backend(Backend):
    """A Molmo2 checkpoint (Hub id or local folder) running in this process.

    Args:
        optimize: the fast path (SDPA, static cache, compiled decode step, vision-feature cache); call
            :meth:`warmup` before timing-sensitive work, since the first call per shape bucket compiles.
        vision_cache_size: images whose vision features are kept (``None``: 8 when optimising, else 0).
        fast_decode: details of the optimised decode (compile on/off, mode, bucket); ``None``: defaults.
        quantize: ``"int8"`` or ``"int4"`` weight-only quantization of the linear layers (``quantize``
            module); ``None`` keeps the weights in ``dtype``.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        device: str | None = None,
        dtype: str | None = None,
        *,
        optimize: bool = False,
        vision_cache_size: int | None = None,
        fast_decode: FastDecodeConfig | None = None,
        quantize: str | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device, placement = choose_placement(device)  # placement: a device map (device='auto')
        self.dtype = choose_dtype(dtype, self.device)
        self.optimize = optimize
        self.quantize = check_quantize(quantize)
        quant_config = quantization_config(self.quantize, self.device, self.dtype)  # fails before loading
        self._lock = threading.Lock()  # one model call at a time when several threads share the model
        load_kwargs = {"attn_implementation": "sdpa"} if optimize else {}
        try:
            self.processor = AutoProcessor.from_pretrained(resolved.location)
            self.model = AutoModelForImageTextToText.from_pretrained(
                resolved.location, dtype=self.dtype, **load_kwargs, **placement
            )
        except OSError as exc:
            if resolved.is_local_dir:
                raise ModelLoadError(f"could not load Molmo2 from {resolved.location}: {exc}") from exc
            raise ModelNotFoundError(missing_weights_message(resolved.model_id)) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{resolved.model_id!r} is not a loadable Molmo2 checkpoint: {exc}") from exc
        if quant_config is not None:
            quantize_model(self.model, quant_config, None if placement else self.device)
        if not placement:  # a device-mapped model is already on its GPUs
            self.model.to(self.device)
        self.model.eval()
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.fast_decoder = FastDecoder(self.model, self.device, fast_decode) if optimize else None
        entries = (DEFAULT_ENTRIES if optimize else 0) if vision_cache_size is None else vision_cache_size
        self.vision_cache = VisionFeatureCache(self.model, entries) if entries > 0 else None
        self.text = TokenizerText(self.tokenizer)
        self.info = ModelInfo(
            model_id=resolved.model_id,
            family="molmo2",
            device=str(self.device),
            dtype=dtype_name(self.dtype),
            num_parameters=sum(p.numel() for p in self.model.parameters()),
            source=resolved.location,
            quantize=self.quantize,
        )
        logger.info(
            "loaded %s on %s (%s%s)", resolved.model_id, self.device, self.info.dtype, self._quantize_note()
        )

    def _quantize_note(self) -> str:
        return f", {self.quantize} weights" if self.quantize else ""

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

    @property
    def special_tokens(self) -> frozenset[str]:
        return self.text.special_tokens

    def count_tokens(self, text: str) -> int | None:
        return self.text.count(text)

    def generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        if not requests:
            return []
        with self._lock:
            try:
                return self._generate(requests, options)
            except torch.cuda.OutOfMemoryError:
                # free the failed batch's cached blocks, so the halves a server retries can use them
                torch.cuda.empty_cache()
                raise

    def warmup(
        self,
        image_sizes: Sequence[tuple[int, int]] = ((1280, 720),),
        batch_sizes: Sequence[int] = (1,),
        options: GenerationOptions | None = None,
    ) -> float:
        """Run the shapes a server will see once, so that compiling (and CUDA-graph recording) happens now
        rather than in the first client's request. Returns the seconds it took.

        Each (image size, batch size) pair fixes a prompt length; with ``options`` (the budget decides the
        cache bucket, so pass the options requests will use) a few decode steps are run three times,
        enough for CUDA graphs to be recorded and replayed.
        """
        from PIL import Image

        if self.fast_decoder is None:
            return 0.0  # the plain path has nothing to compile
        started = time.perf_counter()
        options = options or GenerationOptions(max_new_tokens=256)
        for size in image_sizes:
            image = Image.new("RGB", tuple(size), (128, 128, 128))
            for batch in batch_sizes:
                requests = [Request((image,), "Point to the centre.")] * batch
                for _ in range(3):
                    with self._lock:
                        self._generate(requests, options, step_limit=4)
        if self.vision_cache is not None:
            self.vision_cache.clear()
        seconds = time.perf_counter() - started
        logger.info("warm-up of %s took %.1f s", self.info.model_id, seconds)
        return seconds

    def _generate(
        self, requests: Sequence[Request], options: GenerationOptions, step_limit: int | None = None
    ) -> list[Generation]:
        started = time.perf_counter()
        inputs = self.preprocess(requests)
        prompt_length = inputs["input_ids"].shape[1]
        with torch.inference_mode():
            if self.vision_cache is not None:
                images = [image for request in requests for image in request.images]
                inputs = self.vision_cache.swap_in(inputs, images)
            preprocessed = time.perf_counter()
            output = self._decode(requests, options, inputs, step_limit)
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

    def _decode(
        self, requests: Sequence[Request], options: GenerationOptions, inputs: dict, step_limit: int | None
    ) -> torch.Tensor:
        """``generate`` with the options' stopping rule, on the fast path when optimising.

        A compile failure on a shape not yet run falls back to the static cache alone, with the reason
        logged, rather than failing the request.
        """
        batch_size, prompt_length = inputs["input_ids"].shape
        fast = self.fast_decoder
        extra = fast.generate_kwargs(batch_size, prompt_length, options.max_new_tokens) if fast else {}
        try:
            output = self._call_generate(requests, options, inputs, step_limit, extra)
        except Exception as exc:  # compile errors come as many types (dynamo, inductor, the C compiler)
            if fast is None or not fast.may_fall_back(extra):
                raise
            fast.disable_compile(f"{type(exc).__name__}: {exc}")
            extra = fast.generate_kwargs(batch_size, prompt_length, options.max_new_tokens)
            output = self._call_generate(requests, options, inputs, step_limit, extra)
        if fast is not None:
            fast.succeeded(extra)
        return output

    def _call_generate(
        self,
        requests: Sequence[Request],
        options: GenerationOptions,
        inputs: dict,
        step_limit: int | None,
        extra: dict,
    ) -> torch.Tensor:
        prompt_length = inputs["input_ids"].shape[1]
        stopping: list = []
        if options.stop_at_answer or options.stop_at_coords:
            coords_only = options.stop_at_coords
            stopping.append(AnswerCompleteCriteria(self.tokenizer, prompt_length, coords_only=coords_only))
        if step_limit is not None:
            stopping.append(MaxNewTokensCriteria(prompt_length, step_limit))
        sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
        return self.model.generate(
            **inputs,
            **extra,
            max_new_tokens=options.max_new_tokens,
            stopping_criteria=stopping,
            logits_processor=self.extra_logits_processors(requests, prompt_length),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            **(sampling if options.temperature > 0 else {"do_sample": False}),
        )

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
