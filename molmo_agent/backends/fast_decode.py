"""The optimised decode path of a transformers model: a static KV cache and a compiled decode step.

Eager decoding in transformers is launch-bound: each token runs hundreds of small kernels from Python.
A :class:`~transformers.StaticCache` gives every decode step the same tensor shapes, which lets
``generate`` run the step through ``torch.compile`` (``mode="reduce-overhead"``, i.e. CUDA graphs, on a
GPU). Prefill stays eager, since its length varies with the prompt.

Shapes are bucketed so that a new request rarely means a new graph: the cache length is the prompt plus
the token budget rounded up to a multiple of ``bucket`` (256), and caches are kept per (batch size, cache
length) and reused (zeroed) across calls, so a steady stream of point queries compiles once per bucket.
Greedy outputs are token for token those of the plain path; tests check it on the tiny model.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

CACHE_BUCKET = 256
MAX_CACHES = 4
"""Static caches kept alive (one per batch size and length bucket seen lately); the oldest is dropped."""


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run here (``None`` when it can): inductor needs Triton on a GPU and
    a C compiler on the CPU."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return "torch cannot check for Triton"
        return None if has_triton() else "Triton is not installed (pip install triton)"
    if device.type == "cpu":
        compiler = os.environ.get("CXX") or "g++"
        if shutil.which(compiler) is None and shutil.which("c++") is None and shutil.which("clang++") is None:
            return f"no C++ compiler found ({compiler}, c++ or clang++) for inductor's CPU kernels"
        return None
    return f"compiling the decode step is not set up for {device.type!r} devices"


def bucketed_length(length: int, bucket: int = CACHE_BUCKET) -> int:
    """``length`` rounded up to a multiple of ``bucket``."""
    return -(-length // bucket) * bucket


@dataclass(frozen=True)
class FastDecodeConfig:
    """How the optimised path runs; the defaults suit serving (``compile=None`` means: when possible)."""

    compile: bool | None = None
    mode: str | None = None
    """``torch.compile`` mode; ``None`` picks ``"reduce-overhead"`` (CUDA graphs) on CUDA, ``"default"``
    elsewhere."""
    bucket: int = CACHE_BUCKET


class FastDecoder:
    """Keyword arguments that put one ``generate`` call on the static-cache (and compiled) path."""

    def __init__(self, model, device: torch.device, config: FastDecodeConfig | None = None) -> None:
        self.model = model
        self.device = device
        self.config = config or FastDecodeConfig()
        self._caches: OrderedDict[tuple[int, int], object] = OrderedDict()
        reason = compile_unavailable_reason(device)
        if self.config.compile is False:
            reason = "compile=False was asked for"
        if reason is not None and self.config.compile:
            logger.warning("decoding without torch.compile: %s", reason)
        elif reason is not None:
            logger.info("decoding without torch.compile: %s", reason)
        self.compile_disabled_reason = reason
        self.compiled_shapes: set[tuple[int, int]] = set()
        """(batch size, cache length) pairs that ran compiled at least once."""
        self._last_key: tuple[int, int] | None = None
        self._compile = self._compile_config()

    @property
    def compiles(self) -> bool:
        return self.compile_disabled_reason is None

    def disable_compile(self, reason: str) -> None:
        """Fall back to the static cache alone (called when compiling fails at run time)."""
        logger.warning("torch.compile of the decode step failed; decoding eagerly from now on: %s", reason)
        self.compile_disabled_reason = reason

    def generate_kwargs(self, batch_size: int, prompt_length: int, max_new_tokens: int) -> dict:
        """A zeroed static cache for this shape bucket, plus the compile settings for the decode step."""
        from transformers import StaticCache

        key = (batch_size, bucketed_length(prompt_length + max_new_tokens, self.config.bucket))
        cache = self._caches.pop(key, None)
        if cache is None:
            cache = StaticCache(config=self.model.config, max_cache_len=key[1])
            while len(self._caches) >= MAX_CACHES:
                self._caches.popitem(last=False)
        else:
            cache.reset()
        self._caches[key] = cache
        self._last_key = key
        if not self.compiles:
            return {"cache": cache, "disable_compile": True}
        return {"cache": cache, "compile_config": self._compile}

    def may_fall_back(self, kwargs: dict) -> bool:
        """Did a call with ``kwargs`` compile a new shape (so its failure may be the compiler's)?"""
        return "compile_config" in kwargs and self._last_key not in self.compiled_shapes

    def succeeded(self, kwargs: dict) -> None:
        if "compile_config" in kwargs and self._last_key is not None:
            self.compiled_shapes.add(self._last_key)

    def _compile_config(self):
        from transformers.generation.configuration_utils import CompileConfig

        mode = self.config.mode or ("reduce-overhead" if self.device.type == "cuda" else "default")
        config = CompileConfig(fullgraph=False, dynamic=False, mode=mode)
        config._compile_all_devices = True  # transformers only auto-compiles on accelerators otherwise
        return config
