"""Molmo v1 (MolmoE-1B, Molmo-7B-O/D, Molmo-72B) through the Hub's remote code.

Untested offline: the remote code and the weights are not on this machine. What is tested here is
everything around them: the compatibility patch, the error translation, and the prompt layout.

The remote ``modeling_molmo.py`` calls ``GenerationMixin._extract_past_from_model_output``, which
transformers removed in 4.49; the well-known one-line fix is to take ``outputs.past_key_values``
instead. :func:`patch_extract_past` supplies exactly that method to the remote class hierarchy at load time.
When the remote code breaks in other ways on a newer transformers, generation fails with
:class:`ModelLoadError` that says what to do instead of a traceback from inside the remote module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import torch

from ..errors import ModelLoadError, ModelNotFoundError
from .base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .quantize import check_quantize, quantization_config, quantize_model
from .registry import ResolvedModel, missing_weights_message
from .stopping import AnswerCompleteCriteria
from .token_tools import TokenizerText
from .torch_setup import choose_dtype, choose_placement, dtype_name

logger = logging.getLogger(__name__)

REMOTE_MODULE_MARKER = "transformers_modules"
INCOMPATIBLE_HINT = (
    "Molmo v1 runs on the Hub's remote code, which this transformers version ({version}) breaks. Use a "
    "Molmo2 checkpoint (e.g. allenai/Molmo2-8B, native in transformers >= 5.20), serve v1 with vLLM "
    "(MolmoForCausalLM), or run molmo-agent in an environment with transformers < 4.49."
)


def _extract_past_from_model_output(self, outputs, *args, **kwargs):
    """The removed GenerationMixin helper, reduced to what Molmo's remote code needs."""
    return "past_key_values", getattr(outputs, "past_key_values", None)


def patch_extract_past(model_class: type) -> bool:
    """Give the remote class hierarchy the helper transformers >= 4.49 removed; True when patched.

    The remote method calls ``super()._extract_past_from_model_output``, so the helper must live on a base
    class of the remote model, not on the model class itself. It is set on the first base that is not the
    model class, which for Molmo is the remote ``PreTrainedModel`` subclass (only that code sees it).
    """
    if any(hasattr(base, "_extract_past_from_model_output") for base in model_class.__mro__[1:]):
        return False
    target = model_class.__mro__[1]
    target._extract_past_from_model_output = _extract_past_from_model_output
    return True


def raised_in_remote_code(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc`` is in Hub remote code (so it is a compatibility issue)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and REMOTE_MODULE_MARKER in last.tb_frame.f_code.co_filename


class Molmo1Backend(Backend):
    """A Molmo v1 checkpoint via ``trust_remote_code``; answers one request at a time.

    ``quantize`` (``"int8"``/``"int4"``) quantizes the linear weights after loading, as for Molmo2
    (``quantize`` module); untested offline like the rest of this backend.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        device: str | None = None,
        dtype: str | None = None,
        *,
        quantize: str | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoProcessor

        self.device, placement = choose_placement(device)  # placement: a device map (device='auto')
        self.dtype = choose_dtype(dtype, self.device)
        self.quantize = check_quantize(quantize)
        quant_config = quantization_config(self.quantize, self.device, self.dtype)  # fails before loading
        self._lock = threading.Lock()  # one model call at a time when several threads share the model
        try:
            self.processor = AutoProcessor.from_pretrained(resolved.location, trust_remote_code=True)
            self.model = AutoModelForCausalLM.from_pretrained(
                resolved.location, trust_remote_code=True, dtype=self.dtype, **placement
            )
        except OSError as exc:
            if resolved.is_local_dir:
                raise ModelLoadError(f"could not load Molmo v1 from {resolved.location}: {exc}") from exc
            raise ModelNotFoundError(
                missing_weights_message(resolved.model_id) + " Molmo v1 also needs its remote code (the "
                "*.py files of the Hub repo) in that folder or cache."
            ) from exc
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise ModelLoadError(self._incompatible(exc)) from exc
        if patch_extract_past(type(self.model)):
            logger.info("patched Molmo v1 remote code for transformers >= 4.49 (outputs.past_key_values)")
        if quant_config is not None:
            quantize_model(self.model, quant_config, None if placement else self.device)
        if not placement:  # a device-mapped model is already on its GPUs
            self.model.to(self.device)
        self.model.eval()
        self.text = TokenizerText(self.processor.tokenizer)
        self.info = ModelInfo(
            model_id=resolved.model_id,
            family="molmo1",
            device=str(self.device),
            dtype=dtype_name(self.dtype),
            num_parameters=sum(p.numel() for p in self.model.parameters()),
            source=resolved.location,
            quantize=self.quantize,
        )

    @staticmethod
    def _incompatible(exc: BaseException) -> str:
        import transformers

        return f"{INCOMPATIBLE_HINT.format(version=transformers.__version__)} (cause: {exc})"

    @property
    def special_tokens(self) -> frozenset[str]:
        return self.text.special_tokens

    def count_tokens(self, text: str) -> int | None:
        return self.text.count(text)

    def generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        with self._lock:
            return [self._generate_one(request, options) for request in requests]

    def _generate_one(self, request: Request, options: GenerationOptions) -> Generation:
        from transformers import GenerationConfig

        started = time.perf_counter()
        # The remote processor wraps the text as " User: {prompt} Assistant:" after the image tokens.
        inputs = self.processor.process(images=list(request.images), text=request.prompt)
        inputs = {key: value.to(self.device).unsqueeze(0) for key, value in inputs.items()}
        if "images" in inputs:
            inputs["images"] = inputs["images"].to(self.dtype)
        preprocessed = time.perf_counter()
        config = GenerationConfig(
            max_new_tokens=options.max_new_tokens,
            stop_strings=["<|endoftext|>", *(["</point>", "</points>"] if options.stop_at_answer else [])],
            do_sample=options.temperature > 0,
            **(
                {"temperature": options.temperature, "top_p": options.top_p}
                if options.temperature > 0
                else {}
            ),
        )
        prompt_length = inputs["input_ids"].size(1)
        stopping = (
            {
                "stopping_criteria": [
                    AnswerCompleteCriteria(self.processor.tokenizer, prompt_length, coords_only=True)
                ]
            }
            if options.stop_at_coords
            else {}
        )  # the remote generate_from_batch hands extra keywords on to GenerationMixin.generate
        try:
            with torch.inference_mode():
                output = self.model.generate_from_batch(
                    inputs, config, tokenizer=self.processor.tokenizer, **stopping
                )
        except (AttributeError, TypeError, KeyError) as exc:
            if raised_in_remote_code(exc) or "generate_from_batch" in str(exc):
                raise ModelLoadError(self._incompatible(exc)) from exc
            raise
        generated = output[0, prompt_length:]
        finished = time.perf_counter()
        return Generation(
            text=self.processor.tokenizer.decode(generated, skip_special_tokens=True),
            num_generated_tokens=int(generated.numel()),
            preprocess_ms=(preprocessed - started) * 1000,
            model_ms=(finished - preprocessed) * 1000,
        )
