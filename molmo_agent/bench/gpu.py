"""One point query on a Molmo2-8B-size model: model-card recipe vs our paths vs the hardware limit.

``molmo-agent bench gpu`` builds a checkpoint of the published Molmo2-8B shape with random bf16 weights
(no Hub download), saves it, loads it through ``ma.load_model`` (the real path), and times one 1280x720
point query whose answer is forced to a fixed length (a Molmo2 point answer is ~20 tokens with Qwen's
tokenizer; random weights would never end one). Phases, in the order that keeps GPU memory low:

1. build: random weights on the target device (init skipped: built on the meta device, then filled in
   place), saved to a temporary folder;
2. plain: ``load_model(dtype=bf16)`` single-query latency, prefill-only time, batch-8 throughput;
3. recipe: the same weights as fp32 under ``torch.autocast(bf16)``, batch 1, eager ``generate``, as the
   model card runs it: once ending at the answer's end token, once decoding the whole 200-token budget;
4. optimised: ``load_model(optimize=True)`` single query and batch 8, when ``load_model`` offers it;
5. quantized: ``load_model(quantize="int8" | "int4")`` (torchao weight-only, eager), one phase each: the
   single-query time, the decode step time (a 21-token answer minus a 1-token one, over 20 steps) against
   the plain phase's, the bytes the weights occupy, peak GPU memory, and agreement with the plain weights:
   the share of prompts whose first free-running greedy tokens are the same. Random weights give nearly
   flat logits, so that agreement is a lower bound of what a trained checkpoint shows.

Every phase is guarded by ``budget_s`` (phases that would not fit are skipped and say so) and the JSON is
rewritten after each phase, so a run cut short still leaves its numbers. The roofline is computed from
the loaded model's parameter counts and the measured prompt: prefill FLOPs at the GPU's dense bf16 peak
plus, per decoded token, every language-model weight (bf16) and the KV cache read once at full HBM
bandwidth. Nothing here asserts a speed.
"""

from __future__ import annotations

import functools
import gc
import inspect
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SCREEN_SIZE = (1280, 720)
QUERY = "the Save button"
FORCED_ANSWER = '<points coords="1 1 412 655">Save button</points>'
ANSWER_TOKENS = 20
"""Forced answer length before its end token (a Molmo2 point answer with Qwen's tokenizer is ~20)."""
RECIPE_BUDGET = 200
AGREEMENT_PROMPTS = 4
AGREEMENT_TOKENS = 8
"""Free-running greedy tokens compared between the plain and each quantized load, on this many prompts."""
QUANTIZE_KINDS = ("int8", "int4")

GPU_SPECS = (  # (name fragment, dense bf16 TFLOP/s, HBM TB/s), datasheet peaks; first match wins
    ("H200", 989.0, 4.8),
    ("H100 PCIe", 756.0, 2.0),
    ("H100 NVL", 835.0, 3.9),
    ("H100", 989.0, 3.35),
    ("A100", 312.0, 2.0),
)


@dataclass(frozen=True)
class BenchSize:
    """A model shape to benchmark and the seconds each phase needs left in the budget to start."""

    name: str
    description: str
    reserve_s: dict[str, float] = field(default_factory=dict)


SIZES = {
    "8b": BenchSize(
        "8b",
        "Molmo2-8B shape (Qwen3-8B text model, SigLIP2-so400m ViT, 378-px crops, max 8 crops)",
        {"plain": 90, "recipe": 60, "optimized": 120, "int8": 90, "int4": 90},
    ),
    "medium": BenchSize("medium", "tiny_molmo2 'medium' preset with the published 378-px / 8-crop images"),
    "tiny": BenchSize("tiny", "tiny_molmo2 'tiny' preset (112-px crops): a smoke test"),
}


# -- the checkpoint ----------------------------------------------------------------------------------------


def _specs(size: str):
    """(TinyMolmo2Spec for the image processor and small configs, whether the text/ViT shape is 8B)."""
    from ..training.tiny_molmo2 import PRESETS

    published_images = {"crop_size": 378, "max_crops": 8, "overlap_margins": (4, 4)}
    if size == "8b":
        return replace(PRESETS["tiny"], **published_images), True
    if size == "medium":
        return replace(PRESETS["medium"], **published_images), False
    return PRESETS["tiny"], False


def published_8b_config(tokenizer, vocab_size: int = 151936):
    """Molmo2Config of Molmo2-8B's shape with our byte tokenizer's special-token ids.

    transformers' ``Molmo2Config`` defaults already are the published vision tower (SigLIP2-so400m: width
    1152, 16 heads, MLP 4304, 14-px patches, 378-px crops, 25 of its 27 layers kept since the adapter
    reads layers -3 and -9) and the Qwen3-8B-shaped text model (width 4096, 36 layers, 32 heads, 8 KV
    heads, head_dim 128, MLP 12288, vocab 151936 + 128 added). Only the adapter defaults belong to a
    7B sibling (text width 3584, MLP 18944); Molmo2 sizes the adapter MLP like its language model's, as
    Molmo2-4B's published config shows, so it is set to 4096 / 12288 here.
    """
    from transformers import Molmo2Config

    from ..training.tiny_molmo2 import image_token_settings, with_text_token_ids

    config = Molmo2Config(
        adapter_config={"text_hidden_size": 4096, "intermediate_size": 12288},
        text_config={"vocab_size": vocab_size},
        **image_token_settings(tokenizer),
    )
    return with_text_token_ids(config, tokenizer)


def build_random_checkpoint(size: str, out_dir: str | Path, device: str, dtype: str, seed: int = 0) -> dict:
    """Write a random-weight checkpoint of ``size``; weights are made on ``device`` without slow init.

    The model is constructed on the meta device (no memory, no init), materialised on ``device`` in
    ``dtype`` and filled in place (normal(0, 0.02) matrices, unit norm weights, zero biases): an 8B model
    takes seconds on a GPU instead of minutes of CPU init. Only parameters are saved; the rotary buffers
    are non-persistent and rebuilt by ``from_pretrained``.
    """
    import torch
    from transformers import GenerationConfig, Molmo2ForConditionalGeneration

    from ..backends.torch_setup import choose_dtype
    from ..training.tiny_molmo2 import _build_config, _build_processor, _build_tokenizer

    started = time.perf_counter()
    spec, is_8b = _specs(size)
    tokenizer, vocab_size = _build_tokenizer()
    config = published_8b_config(tokenizer) if is_8b else _build_config(spec, tokenizer, vocab_size)
    with torch.device("meta"):
        model = Molmo2ForConditionalGeneration(config)
    target = torch.device(device)
    model = model.to(choose_dtype(dtype, target)).to_empty(device=target).eval()
    generator = torch.Generator(device=target).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim > 1:
                param.normal_(0.0, 0.02, generator=generator)
            elif "norm" in name:
                param.fill_(1.0)
            else:
                param.zero_()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    _synchronize(target)
    built = time.perf_counter()
    out = Path(out_dir)
    model.save_pretrained(out)
    _build_processor(spec, tokenizer).save_pretrained(out)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    _free(target)
    return {
        "path": str(out),
        "parameters": parameters,
        "checkpoint_gb": round(sum(f.stat().st_size for f in out.glob("*.safetensors")) / 1e9, 2),
        "build_s": round(built - started, 2),
        "save_s": round(time.perf_counter() - built, 2),
    }


# -- helpers -----------------------------------------------------------------------------------------------


def _synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _free(device) -> None:
    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _peak_gb(device) -> float | None:
    import torch

    if torch.device(device).type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated() / 1e9
    torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


def screen(index: int) -> Image.Image:
    """A distinct 1280x720 image per call, so no run can reuse another's vision features."""
    rng = np.random.default_rng(index + 1000)
    return Image.fromarray(rng.integers(0, 256, (SCREEN_SIZE[1], SCREEN_SIZE[0], 3), dtype=np.uint8))


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def load_model_accepts(name: str) -> bool:
    from ..model import load_model

    return name in inspect.signature(load_model).parameters


def _force(backend, tokens: int, end: bool) -> None:
    """Make ``backend`` answer with ``tokens`` tokens of FORCED_ANSWER (repeated), then its end token.

    The same instrument as ``ScriptedMolmo2Backend``, attached to a backend that ``load_model`` made.
    """
    from ..backends.scripted import ForcedAnswerProcessor

    ids = backend.tokenizer.encode(FORCED_ANSWER, add_special_tokens=False)
    answer = (ids * (tokens // len(ids) + 1))[:tokens]
    end_id = backend.tokenizer.eos_token_id if end else None
    backend.extra_logits_processors = lambda requests, prompt_length: [
        ForcedAnswerProcessor([answer] * len(requests), prompt_length, end_id)
    ]


def _warm(backend, batch: int) -> float | None:
    """The backend's own warm-up (compiling for this shape), as a server would run it at start."""
    from ..backends.base import GenerationOptions

    warmup = getattr(backend, "warmup", None)
    if warmup is None:
        return None
    options = GenerationOptions(max_new_tokens=ANSWER_TOKENS + 1, stop_at_answer=False)
    return round(warmup(image_sizes=[SCREEN_SIZE], batch_sizes=[batch], options=options), 2)


def _request(index: int):
    from ..backends.base import Request
    from ..prompts import point_prompt

    return Request((screen(index),), point_prompt(QUERY, "molmo2"))


# -- phases ------------------------------------------------------------------------------------------------


def _time_queries(backend, device, runs: int, batch: int, tokens: int, warmups: int = 1) -> dict:
    """Median wall time of ``backend.generate`` over distinct images, the answer forced to ``tokens``+end."""
    from ..backends.base import GenerationOptions

    options = GenerationOptions(max_new_tokens=tokens + 1, stop_at_answer=False)
    samples, generated, texts = [], [], []
    for run in range(-warmups, runs):
        requests = [_request(run * batch + row + 100 * batch) for row in range(batch)]
        _synchronize(device)
        started = time.perf_counter()
        generations = backend.generate(requests, options)
        _synchronize(device)
        if run >= 0:
            samples.append((time.perf_counter() - started) * 1000)
            generated.append(generations[0].num_generated_tokens)
            texts.append(generations[0].text)
    ms = _median(samples)
    return {
        "batch": batch,
        "runs": runs,
        "ms": ms,
        "ms_per_query": round(ms / batch, 2),
        "queries_per_s": round(batch * 1000 / ms, 2),
        "tokens_per_query": statistics.median(generated),
        "forced_answer_seen": all(t.startswith(FORCED_ANSWER[: min(tokens, 8)]) for t in texts),
        "samples_ms": [round(s, 2) for s in samples],
    }


def first_tokens(
    backend, prompts: int = AGREEMENT_PROMPTS, tokens: int = AGREEMENT_TOKENS
) -> list[list[int]]:
    """The first ``tokens`` greedy tokens the model itself picks (nothing forced) for ``prompts`` prompts."""
    import torch

    rows = []
    for index in range(prompts):
        inputs = backend.preprocess([_request(900 + index)])
        with torch.inference_mode():
            output = backend.model.generate(
                **inputs,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=backend.tokenizer.pad_token_id,
            )
        rows.append(output[0, inputs["input_ids"].shape[1] :].tolist())
    return rows


def token_agreement(reference: list[list[int]], other: list[list[int]]) -> dict:
    """Share of prompts with all first tokens equal, and the mean length of the equal prefix."""
    prefixes = []
    for a, b in zip(reference, other, strict=True):
        same = 0
        while same < min(len(a), len(b)) and a[same] == b[same]:
            same += 1
        prefixes.append(same)
    equal = sum(p == len(a) for p, a in zip(prefixes, reference, strict=True))
    return {
        "prompts": len(reference),
        "tokens": max((len(a) for a in reference), default=0),
        "all_equal": round(equal / max(len(reference), 1), 3),
        "mean_equal_prefix": round(statistics.mean(prefixes), 2) if prefixes else 0.0,
    }


def decode_step_ms(answer: dict, first: dict) -> float:
    """Per decode step: a forced ``ANSWER_TOKENS``+end answer minus a 1-token one, over the steps between."""
    return round((answer["ms"] - first["ms"]) / ANSWER_TOKENS, 3)


def _step_timing(backend, device, runs: int) -> dict:
    """Single-query timing with the forced answer, and the decode step time it implies."""
    _force(backend, 0, end=True)
    first = _time_queries(backend, device, runs, 1, 0)
    _force(backend, ANSWER_TOKENS, end=True)
    answer = _time_queries(backend, device, runs, 1, ANSWER_TOKENS)
    return answer | {"first_token_ms": first["ms"], "decode_step_ms": decode_step_ms(answer, first)}


def _cannot_quantize(kind: str, device, dtype: str) -> str | None:
    """Why ``kind`` cannot run on this device (int4 off CUDA), so the phase is skipped, not failed."""
    from ..backends.quantize import int4_unsupported_reason
    from ..backends.torch_setup import choose_dtype

    return int4_unsupported_reason(device, choose_dtype(dtype, device)) if kind == "int4" else None


def _quantized(checkpoint: str, device, dtype: str, kind: str, runs: int, reference) -> dict:
    """One quantized load (eager): timing, decode step, weight bytes, agreement with the plain weights."""
    from ..backends.quantize import quantized_linears, weight_bytes
    from ..model import load_model

    loading = time.perf_counter()
    backend = load_model(checkpoint, device=str(device), dtype=dtype, quantize=kind).backend
    result: dict[str, Any] = {
        "load_s": round(time.perf_counter() - loading, 2),
        "quantized_linears": quantized_linears(backend.model),
        "weight_bytes": weight_bytes(backend.model),
    }
    if reference is not None:
        result["agreement"] = token_agreement(reference, first_tokens(backend))
    result.update(_step_timing(backend, device, runs))
    backend.model = None
    return result


def _time_prefill(backend, device, runs: int) -> dict:
    """One forward over the prompt (ViT + adapter + language model, last position's logits only)."""
    import torch

    samples = []
    for run in range(-1, runs):
        inputs = backend.preprocess([_request(run + 50)])
        _synchronize(device)
        started = time.perf_counter()
        with torch.inference_mode():
            backend.model(**inputs, logits_to_keep=1)
        _synchronize(device)
        if run >= 0:
            samples.append((time.perf_counter() - started) * 1000)
    pixel_values = inputs["pixel_values"]
    image_patch_id = backend.model.config.image_patch_id
    return {
        "runs": runs,
        "ms": _median(samples),
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "image_tokens": int((inputs["input_ids"] == image_patch_id).sum()),
        "crops": int(pixel_values.shape[0]),
        "vit_patches": int(pixel_values.shape[0] * pixel_values.shape[1]) if pixel_values.ndim >= 3 else None,
    }


def _recipe(backend, device, runs: int, full_budget_runs: int) -> dict:
    """The model-card recipe: fp32 weights under bf16 autocast, batch 1, eager ``generate``."""
    import torch
    from transformers import LogitsProcessorList

    from ..backends.scripted import ForcedAnswerProcessor

    model = backend.model.float()
    backend.dtype = torch.float32
    ids = backend.tokenizer.encode(FORCED_ANSWER, add_special_tokens=False)

    def once(index: int, tokens: int, end: bool) -> tuple[float, int]:
        request = _request(index)
        _synchronize(device)
        started = time.perf_counter()
        text = backend.prompt_text(request)
        inputs = backend.processor(images=list(request.images), text=[text], return_tensors="pt").to(device)
        length = inputs["input_ids"].shape[1]
        answer = (ids * (tokens // len(ids) + 1))[:tokens]
        forced = ForcedAnswerProcessor([answer], length, backend.tokenizer.eos_token_id if end else None)
        with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            output = model.generate(
                **inputs,
                max_new_tokens=RECIPE_BUDGET,
                do_sample=False,
                logits_processor=LogitsProcessorList([forced]),
                eos_token_id=backend.tokenizer.eos_token_id,
                pad_token_id=backend.tokenizer.pad_token_id,
            )
        backend.tokenizer.decode(output[0, length:], skip_special_tokens=True)
        _synchronize(device)
        return (time.perf_counter() - started) * 1000, int(output.shape[1] - length)

    once(-1, ANSWER_TOKENS, True)
    answer_runs = [once(200 + run, ANSWER_TOKENS, True) for run in range(runs)]
    full_runs = [once(300 + run, RECIPE_BUDGET, False) for run in range(full_budget_runs)]
    result = {
        "weights": "float32",
        "autocast": "bfloat16",
        "attention": model.config._attn_implementation,
        "runs": runs,
        "ms": _median([ms for ms, _ in answer_runs]),
        "tokens_per_query": answer_runs[0][1],
    }
    if full_runs:
        result["full_budget"] = {
            "runs": len(full_runs),
            "ms": _median([ms for ms, _ in full_runs]),
            "tokens_per_query": full_runs[0][1],
        }
    return result


def _component_params(model) -> dict[str, int]:
    """Parameters per part of Molmo2ForConditionalGeneration (names as in transformers 5.2x)."""
    parts = {"vision": 0, "projector": 0, "text_layers": 0, "embed": 0, "lm_head": 0}
    for name, param in model.named_parameters():
        if ".vision_tower." in f".{name}":
            parts["vision"] += param.numel()
        elif "multi_modal_projector" in name:
            parts["projector"] += param.numel()
        elif "embed_tokens" in name:
            parts["embed"] += param.numel()
        elif name.startswith("lm_head"):
            parts["lm_head"] += param.numel()
        else:
            parts["text_layers"] += param.numel()
    return parts


def _shape(config) -> dict[str, int]:
    text, vision = config.text_config, config.vision_config
    return {
        "text_layers": text.num_hidden_layers,
        "attention_width": text.num_attention_heads * text.head_dim,
        "kv_width": text.num_key_value_heads * text.head_dim,
        "vit_layers": vision.num_hidden_layers,
        "vit_width": vision.hidden_size,
    }


def gpu_specs(device_name: str | None) -> tuple[float, float] | None:
    """Datasheet (dense bf16 TFLOP/s, HBM TB/s) for the GPU, or None when unknown (e.g. a CPU)."""
    for fragment, tflops, tbs in GPU_SPECS:
        if device_name and fragment in device_name:
            return tflops, tbs
    return None


def roofline(params: dict, shape: dict, prefill: dict, tokens: int, specs: tuple[float, float]) -> dict:
    """Lower bound for one query: prefill at peak FLOP/s, each decode step reading weights + KV at HBM speed.

    A query of ``tokens`` generated tokens has one prefill (which yields the first token) and
    ``tokens - 1`` decode steps. Weights count at 2 bytes (bf16); the embedding is a row lookup.
    """
    tflops, tbs = specs
    t = prefill["prompt_tokens"]
    patches = prefill["vit_patches"] or 0
    per_crop = patches // max(prefill["crops"], 1)
    vit = 2 * params["vision"] * patches + 4 * shape["vit_layers"] * patches * per_crop * shape["vit_width"]
    projector = 2 * params["projector"] * prefill["image_tokens"]
    lm = (
        2 * params["text_layers"] * t
        + 2 * shape["text_layers"] * t * t * shape["attention_width"]
        + 2 * params["lm_head"]
    )
    prefill_flops = vit + projector + lm
    kv_bytes = 2 * 2 * shape["text_layers"] * shape["kv_width"] * (t + tokens / 2)
    step_bytes = 2 * (params["text_layers"] + params["lm_head"]) + kv_bytes
    prefill_ms = prefill_flops / (tflops * 1e12) * 1000
    step_ms = step_bytes / (tbs * 1e12) * 1000

    def query_ms(n: int, batch: int = 1) -> float:
        step = max(
            (2 * (params["text_layers"] + params["lm_head"]) + batch * kv_bytes) / (tbs * 1e12),
            batch * 2 * (params["text_layers"] + params["lm_head"]) / (tflops * 1e12),
        )
        return round(batch * prefill_ms + (n - 1) * step * 1000, 2)

    return {
        "peak_tflops": tflops,
        "hbm_tbs": tbs,
        "prefill_tflop": round(prefill_flops / 1e12, 2),
        "vit_tflop": round(vit / 1e12, 2),
        "lm_prefill_tflop": round(lm / 1e12, 2),
        "prefill_ms": round(prefill_ms, 2),
        "decode_step_gb": round(step_bytes / 1e9, 2),
        "decode_step_ms": round(step_ms, 3),
        "query_ms": query_ms(tokens),
        "full_budget_ms": query_ms(RECIPE_BUDGET),
        "batch8_ms": query_ms(tokens, 8),
    }


# -- the run -----------------------------------------------------------------------------------------------


def run_gpu_bench(
    size: str | None = None,
    device: str | None = None,
    runs: int = 3,
    batch: int = 8,
    budget_s: float = 420.0,
    out: str | Path | None = None,
    workdir: str | Path | None = None,
    full_budget_runs: int = 1,
    skip: tuple[str, ...] = (),
    quantize: tuple[str, ...] = QUANTIZE_KINDS,
) -> dict:
    """Run every phase that fits in ``budget_s``; returns the results with a printable ``table``.

    ``skip`` names phases not to run (``recipe``, ``optimized``, ``int8``, ``int4``); ``size`` defaults to
    ``8b`` on a GPU and ``tiny`` elsewhere; ``quantize`` lists the quantized loads to time.
    """
    import torch
    import transformers

    from ..backends.torch_setup import choose_device
    from ..model import load_model

    started = time.perf_counter()
    target = choose_device(device)
    size = size or ("8b" if target.type == "cuda" else "tiny")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; use one of {sorted(SIZES)}")
    plan = SIZES[size]
    dtype = "bfloat16" if target.type == "cuda" else "float32"
    device_name = torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu"
    results: dict[str, Any] = {
        "machine": {
            "device": device_name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
        },
        "size": size,
        "description": plan.description,
        "dtype": dtype,
        "image": f"{SCREEN_SIZE[0]}x{SCREEN_SIZE[1]}, a distinct random image per query",
        "answer_tokens": ANSWER_TOKENS + 1,
        "budget_s": budget_s,
        "phases": {},
        "skipped": {},
        "errors": {},
    }
    phases = results["phases"]

    def save() -> None:
        results["elapsed_s"] = round(time.perf_counter() - started, 1)
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(results, indent=2))

    def phase(name: str, body: Callable[[], Any]) -> Any:
        left, need = budget_s - (time.perf_counter() - started), plan.reserve_s.get(name, 0)
        if name in skip:
            results["skipped"][name] = "skipped on request"
            save()
            return None
        if left < need:
            results["skipped"][name] = f"{left:.0f} s of the budget left, needs {need:.0f} s"
            save()
            return None
        _peak_gb(target)
        try:
            value = body()
        except Exception as exc:  # a failed phase is reported, the next one still runs
            results["errors"][name] = f"{type(exc).__name__}: {exc}"[:2000]
            value = None
        results.setdefault("peak_gpu_gb", {})[name] = _peak_gb(target)
        save()
        return value

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        checkpoint = f"{tmp}/molmo2-{size}"
        built = phase("build", lambda: build_random_checkpoint(size, checkpoint, str(target), dtype))
        if built is None:
            results["table"] = format_table(results)
            save()
            return results
        phases["build"] = built
        plain_kwargs = {"optimize": False} if load_model_accepts("optimize") else {}
        reference: list[list[int]] = []

        def plain() -> Any:
            loading = time.perf_counter()
            model = load_model(checkpoint, device=str(target), dtype=dtype, **plain_kwargs)
            backend = model.backend
            results["parameters"] = _component_params(backend.model)
            results["shape"] = _shape(backend.model.config)
            phases["plain"] = {"load_s": round(time.perf_counter() - loading, 2)}
            if quantize:  # the reference the quantized loads are compared with, before any forcing
                reference.extend(first_tokens(backend))
            phases["plain"].update(_step_timing(backend, target, runs))
            save()
            phases["prefill"] = _time_prefill(backend, target, runs)
            save()
            phases["plain_batch"] = _time_queries(backend, target, max(runs - 1, 1), batch, ANSWER_TOKENS)
            return backend

        backend = phase("plain", plain)
        if backend is not None:
            recipe = phase("recipe", lambda: _recipe(backend, target, runs, full_budget_runs))
            if recipe is not None:
                phases["recipe"] = recipe
            backend.model = None
        backend = None
        _free(target)

        def optimized() -> dict:
            if not load_model_accepts("optimize"):
                return {
                    "available": False,
                    "reason": "load_model has no 'optimize' argument in this checkout",
                }
            loading = time.perf_counter()
            backend = load_model(checkpoint, device=str(target), dtype=dtype, optimize=True).backend
            result: dict[str, Any] = {"available": True, "load_s": round(time.perf_counter() - loading, 2)}
            _force(backend, ANSWER_TOKENS, end=True)
            result["warmup_s"] = _warm(backend, 1)
            result.update(_time_queries(backend, target, runs, 1, ANSWER_TOKENS))
            phases["optimized"] = result
            save()
            if budget_s - (time.perf_counter() - started) > plan.reserve_s.get("optimized", 0) / 2:
                warmup_s = _warm(backend, batch)
                phases["optimized_batch"] = _time_queries(
                    backend, target, max(runs - 1, 1), batch, ANSWER_TOKENS
                )
                phases["optimized_batch"]["warmup_s"] = warmup_s
            else:
                results["skipped"]["optimized_batch"] = "budget"
            backend.model = None
            return result

        if (fast := phase("optimized", optimized)) is not None:
            phases["optimized"] = fast
        _free(target)
        for kind in quantize:
            if (reason := _cannot_quantize(kind, target, dtype)) is not None:
                results["skipped"][kind] = reason
                continue
            body = functools.partial(_quantized, checkpoint, target, dtype, kind, runs, reference or None)
            if (row := phase(kind, body)) is not None:
                phases[kind] = row
            _free(target)
    specs = gpu_specs(device_name)
    if specs and "prefill" in phases and "parameters" in results:
        results["roofline"] = roofline(
            results["parameters"], results["shape"], phases["prefill"], ANSWER_TOKENS + 1, specs
        )
    results["table"] = format_table(results)
    save()
    return results


# -- the table ---------------------------------------------------------------------------------------------


def format_table(results: dict) -> str:
    """Rows of ms per query with two ratios: x over the roofline, and speed-up over the model-card recipe."""
    phases, limit = results["phases"], results.get("roofline")
    recipe = (phases.get("recipe") or {}).get("ms")

    def row(label: str, ms: float | None, bound: float | None, note: str = "") -> tuple[str, ...]:
        if ms is None:
            return (label, "-", "-", "-", note)
        vs_limit = f"{ms / bound:.2f}x" if bound else "n/a"
        vs_recipe = f"{recipe / ms:.2f}x" if recipe else "n/a"
        return (label, f"{ms:.1f}", vs_limit, vs_recipe, note)

    def per_query(name: str) -> float | None:
        return (phases.get(name) or {}).get("ms_per_query") or (phases.get(name) or {}).get("ms")

    prefill = phases.get("prefill") or {}
    tokens = results["answer_tokens"]
    lim = limit or {}
    full = (phases.get("recipe") or {}).get("full_budget") or {}
    optimized = phases.get("optimized") or {}
    rows = [
        ("path", "ms/query", "x roofline", "vs recipe", "notes"),
        row("roofline", lim.get("query_ms"), lim.get("query_ms"), _roofline_note(lim)),
        row("model-card recipe (fp32 + bf16 autocast)", recipe, lim.get("query_ms"), f"{tokens} tokens"),
        row(
            f"recipe, full {RECIPE_BUDGET}-token budget",
            full.get("ms"),
            lim.get("full_budget_ms"),
            f"{full.get('tokens_per_query', '-')} tokens",
        ),
        row(
            f"plain ({results['dtype']}, eager)", per_query("plain"), lim.get("query_ms"), f"{tokens} tokens"
        ),
        *(_quantized_row(row, phases, results, kind, lim.get("query_ms")) for kind in QUANTIZE_KINDS),
        row(
            "optimised (optimize=True)",
            per_query("optimized") if optimized.get("available") else None,
            lim.get("query_ms"),
            optimized.get("reason", "") if optimized else results["skipped"].get("optimized", "not run"),
        ),
        row(
            "prefill only (ViT + LM, 1 forward)",
            prefill.get("ms"),
            lim.get("prefill_ms"),
            f"{prefill.get('prompt_tokens', '?')} prompt tokens, {prefill.get('crops', '?')} crops",
        ),
        row(
            "batch 8 plain, per query",
            per_query("plain_batch"),
            (lim.get("batch8_ms") or 0) / 8 or None,
            f"{(phases.get('plain_batch') or {}).get('queries_per_s', '-')} queries/s",
        ),
        row(
            "batch 8 optimised, per query",
            per_query("optimized_batch"),
            (lim.get("batch8_ms") or 0) / 8 or None,
            f"{(phases.get('optimized_batch') or {}).get('queries_per_s', '-')} queries/s",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"{results['machine']['device']}  size {results['size']}  dtype {results['dtype']}  "
        f"torch {results['machine']['torch']}  transformers {results['machine']['transformers']}"
    ]
    lines += ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    for name, reason in {**results["skipped"], **results["errors"]}.items():
        lines.append(f"{name}: {reason}")
    return "\n".join(line.rstrip() for line in lines)


def _quantized_row(row: Callable, phases: dict, results: dict, kind: str, bound: float | None) -> tuple:
    """A quantized load's row: ms per query, and its decode step, weights and agreement in the notes."""
    found = phases.get(kind)
    label = f"{kind} weights ({results['dtype']} activations, eager)"
    if not found:
        reason = results["errors"].get(kind) or results["skipped"].get(kind) or "not run"
        return row(label, None, bound, reason.split(":")[0] if kind in results["errors"] else reason)
    plain_step = (phases.get("plain") or {}).get("decode_step_ms")
    agree = found.get("agreement") or {}
    peak = (results.get("peak_gpu_gb") or {}).get(kind)
    note = (
        f"step {found['decode_step_ms']:.2f} ms (plain {plain_step if plain_step is not None else '-'}), "
        f"{_size(found['weight_bytes'])} of weights{f', peak {peak} GB' if peak is not None else ''}, "
        f"first {agree.get('tokens', '-')} tokens equal on {agree.get('all_equal', 0):.0%} of "
        f"{agree.get('prompts', '-')} prompts"
    )
    return row(label, found.get("ms"), bound, note)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


def _roofline_note(limit: dict) -> str:
    if not limit:
        return "no datasheet figures for this device"
    return (
        f"{limit['prefill_tflop']} TFLOP prefill at {limit['peak_tflops']:.0f} TFLOP/s + "
        f"{limit['decode_step_gb']} GB/token at {limit['hbm_tbs']} TB/s"
    )
