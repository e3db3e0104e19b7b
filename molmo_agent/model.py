"""The user-facing model: point, count, act and generate over any backend, single or batched.

This layer owns the pipeline around the network: decode the caller's images (one place: ``images``),
build the prompt (``prompts``), call the backend in one batch, and turn answer text into points or actions
(``parsing``), mapped onto the pixels of the caller's ORIGINAL images. Backends never see coordinates.

Batches: pass a *list of queries* (and a list of images of the same length) to get a list of results;
with a single query string, a list of images is one multi-image request.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from PIL import Image

from . import prompts
from .actions import Action
from .backends.base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .errors import QueryError
from .geometry import Size, fit_within
from .images import ImageLike, ImageLimits, check_total_pixels, load_image
from .parsing import complete_cut_answer, parse_action_detailed, parse_points_detailed
from .points import Point
from .prompts import MAX_TEXT_TOKENS
from .text_guard import TextGuard

MODEL_INPUT_MAX_PIXELS = 4_000_000
"""Images larger than this are downscaled before preprocessing: Molmo sees at most ~1.2 MP of crops, so
bigger inputs only cost decode/resize time. Points are mapped back through normalised coordinates, exactly."""

POINT_OPTIONS = GenerationOptions(max_new_tokens=256, stop_at_answer=True, stop_at_coords=True)
"""Point and count queries stop once the coordinates are written: the label that would follow is the query
echoed, so the answer is closed with it (``read_points``) and the points are those of the full answer."""
ACT_OPTIONS = GenerationOptions(max_new_tokens=96)
"""The library's budget for an action answer (a plan plus the action fits); Molmo's own AndroidControl
evaluation decoded 16 new tokens, which callers reproducing it pass as ``max_new_tokens``."""
GENERATE_OPTIONS = GenerationOptions(max_new_tokens=200)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent per stage for one request (batch stages are shared equally by its requests)."""

    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    parse_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.preprocess_ms + self.model_ms + self.parse_ms


@dataclass(frozen=True)
class PointResult:
    """Points plus the raw answer and why nothing was found, for callers who need more than the list."""

    points: list[Point]
    text: str
    reason: str | None
    image_sizes: list[Size]
    num_generated_tokens: int
    timings: Timings = field(default_factory=Timings)

    @property
    def count(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class ActResult:
    """The parsed action (``None`` when the answer was not an action: see ``reason``) and the raw answer."""

    action: Action | None
    text: str
    reason: str | None
    image_size: Size
    num_generated_tokens: int
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True)
class PreparedImages:
    """The caller's images decoded once: what the model sees, and the original sizes points map onto."""

    images: tuple[Image.Image, ...]
    sizes: list[Size]
    decode_ms: float


class MolmoModel:
    """A loaded Molmo (any family, any backend) with task-level methods."""

    def __init__(
        self,
        backend: Backend,
        *,
        limits: ImageLimits | None = None,
        model_input_max_pixels: int = MODEL_INPUT_MAX_PIXELS,
        max_text_tokens: int = MAX_TEXT_TOKENS,
    ) -> None:
        self.backend = backend
        self.limits = limits or ImageLimits()
        self.model_input_max_pixels = model_input_max_pixels
        self.max_text_tokens = max_text_tokens
        self.guard = TextGuard(frozenset(backend.special_tokens))

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def family(self) -> str:
        return self.backend.family

    # -- task methods -------------------------------------------------------------------------------------

    def point(
        self, image: Any, query: str | Sequence[str], *, all_occurrences: bool = False, bgr: bool = False
    ) -> list[Point] | list[list[Point]]:
        """Points for ``query`` in original-image pixels; a list of queries gives a list of lists."""
        results = self.point_detailed(image, query, all_occurrences=all_occurrences, bgr=bgr)
        return [r.points for r in results] if isinstance(results, list) else results.points

    def count(self, image: Any, query: str | Sequence[str], *, bgr: bool = False) -> int | list[int]:
        """How many instances: the number of points Molmo marks while counting (0 for "There are none.")."""
        results = self.count_detailed(image, query, bgr=bgr)
        return [r.count for r in results] if isinstance(results, list) else results.count

    def act(
        self,
        screenshot: Any,
        goal: str | Sequence[str],
        *,
        step: str | Sequence[str | None] | None = None,
        history: Sequence[Action] = (),
        bgr: bool = False,
        max_new_tokens: int | None = None,
    ) -> Action | list[Action | None] | None:
        """One action for the screen, or ``None`` when the answer is not an action (see :meth:`act_detailed`).

        ``history`` is accepted for API stability; Molmo's AndroidControl format has no history slot
        (one screenshot, no previous actions), so it is not put into the prompt. ``max_new_tokens`` caps the
        answer (default ``ACT_OPTIONS``' 96); a cut answer is parsed as it stands.
        """
        results = self.act_detailed(
            screenshot, goal, step=step, history=history, bgr=bgr, max_new_tokens=max_new_tokens
        )
        return [r.action for r in results] if isinstance(results, list) else results.action

    def generate(
        self,
        image: Any,
        prompt: str | Sequence[str],
        *,
        options: GenerationOptions | None = None,
        bgr: bool = False,
    ) -> str | list[str]:
        """Free-form answer text for a prompt about the image(s)."""
        batch, images, texts = _as_batch(image, prompt)
        self._check_texts(texts, "prompt")
        prompt_texts = [prompts.free_prompt(text) for text in texts]
        answers = self._ask(
            images, prompt_texts, options or GENERATE_OPTIONS, bgr, lambda prep, gen: gen.text
        )
        return answers if batch else answers[0]

    # -- detailed forms -------------------------------------------------------------------------------------

    def point_detailed(
        self, image: Any, query: str | Sequence[str], *, all_occurrences: bool = False, bgr: bool = False
    ) -> PointResult | list[PointResult]:
        batch, images, queries = _as_batch(image, query)
        self._check_texts(queries, "query")
        prompt_texts = [
            prompts.point_prompt(q, self.family, all_occurrences=all_occurrences) for q in queries
        ]
        results = self._ask_points(images, queries, prompt_texts, bgr)
        return results if batch else results[0]

    def count_detailed(
        self, image: Any, query: str | Sequence[str], *, bgr: bool = False
    ) -> PointResult | list[PointResult]:
        batch, images, queries = _as_batch(image, query)
        self._check_texts(queries, "query")
        prompt_texts = [prompts.count_prompt(q, self.family) for q in queries]
        results = self._ask_points(images, queries, prompt_texts, bgr)
        return results if batch else results[0]

    def act_detailed(
        self,
        screenshot: Any,
        goal: str | Sequence[str],
        *,
        step: str | Sequence[str | None] | None = None,
        history: Sequence[Action] = (),
        bgr: bool = False,
        max_new_tokens: int | None = None,
    ) -> ActResult | list[ActResult]:
        batch, images, goals = _as_batch(screenshot, goal)
        steps = _broadcast(step, len(goals), "step")
        self._check_texts(goals, "goal")
        self._check_texts(steps, "step instruction")
        self._check_history(history)
        prompt_texts = [prompts.act_prompt(g, s) for g, s in zip(goals, steps, strict=True)]
        results = self._ask(images, prompt_texts, act_options(max_new_tokens), bgr, read_action)
        return results if batch else results[0]

    def warmup(self) -> float:
        """Pay start-up costs now, not in the first caller's query; returns the seconds taken.

        An optimised backend compiles its decode step for a 1280x720 point query (``backend.warmup``);
        then one real point query runs, which every backend needs once (allocator, kernel choice).
        """
        started = time.perf_counter()
        backend_warmup = getattr(self.backend, "warmup", None)
        if backend_warmup is not None:
            backend_warmup(options=POINT_OPTIONS)
        self.point(Image.new("RGB", (64, 48), (128, 128, 128)), "the centre")
        return time.perf_counter() - started

    # -- caller text ----------------------------------------------------------------------------------------

    def check_text(self, text: object, field_name: str) -> None:
        """Refuse caller text holding one of the tokenizer's special tokens (see ``text_guard``).

        Non-strings pass here and are refused by ``prompts`` with a type message.

        Raises:
            QueryError: Names the field and the token.
        """
        if isinstance(text, str):
            self.guard.check(text, field_name)

    def check_cost(
        self, prompt_text: str, limit: int | None = None, limit_name: str = "max_text_tokens"
    ) -> int:
        """Tokens ``prompt_text`` costs, refused above ``limit`` (default ``self.max_text_tokens``).

        Returns 0 when the backend cannot count (``grpc://``, ``openai://``: their server or engine does).

        Raises:
            QueryError: Over the limit; the message names ``limit_name`` and its value.
        """
        limit = self.max_text_tokens if limit is None else limit
        tokens = self.backend.count_tokens(prompt_text)
        if tokens is not None and tokens > limit:
            raise QueryError(
                f"the prompt text is {tokens} tokens ({len(prompt_text)} characters); the limit "
                f"({limit_name}) is {limit} tokens: shorten it"
            )
        return tokens or 0

    def _check_texts(self, texts: Sequence[object], field_name: str) -> None:
        for text in texts:
            self.check_text(text, field_name)

    def _check_history(self, history: Sequence[Action]) -> None:
        """History never reaches the prompt today, but it is caller text all the same: refused alike."""
        for index, action in enumerate(history):
            for name, value in action_texts(action):
                self.check_text(value, f"history[{index}].{name}")

    # -- pipeline -------------------------------------------------------------------------------------------

    def _ask_points(
        self, images: Sequence[Any], queries: Sequence[str], prompt_texts: Sequence[str], bgr: bool
    ) -> list[PointResult]:
        answers = self._ask(images, prompt_texts, POINT_OPTIONS, bgr, lambda prep, gen: (prep, gen))
        return [
            read_points(prep, gen, prompts.echoed_label(query))
            for (prep, gen), query in zip(answers, queries, strict=True)
        ]

    def _ask(
        self,
        images: Sequence[Any],
        prompt_texts: Sequence[str],
        options: GenerationOptions,
        bgr: bool,
        read: Callable[[PreparedImages, Generation], R],
    ) -> list[R]:
        """Decode every image, run the whole batch in one backend call, and read each answer."""
        for text in prompt_texts:
            self.check_cost(text)
        prepared = [self.prepare(item, bgr) for item in images]
        requests = [Request(p.images, text) for p, text in zip(prepared, prompt_texts, strict=True)]
        generations = self.backend.generate(requests, options)
        return [read(prep, gen) for prep, gen in zip(prepared, generations, strict=True)]

    def prepare(self, item: Any, bgr: bool | Sequence[bool] = False) -> PreparedImages:
        """Decode the caller's image(s) once, keep original sizes, downscale what the model need not see.

        ``bgr`` may be one flag for all images or one per image (a server receives mixed raw formats).
        """
        started = time.perf_counter()
        items = _as_image_list(item)
        flags = [bgr] * len(items) if isinstance(bgr, bool) else list(bgr)
        if len(flags) != len(items):
            raise QueryError(f"{len(flags)} bgr flags for {len(items)} images")
        check_total_pixels(items, self.limits)
        originals = [
            load_image(one, bgr=flag, limits=self.limits) for one, flag in zip(items, flags, strict=True)
        ]
        model_images = tuple(self._model_view(img) for img in originals)
        return PreparedImages(model_images, [img.size for img in originals], _elapsed_ms(started))

    def _model_view(self, img: Image.Image) -> Image.Image:
        target = fit_within(img.size, self.model_input_max_pixels)
        return img if target == img.size else img.resize(target, Image.Resampling.BILINEAR)


def action_texts(action: Action) -> list[tuple[str, str]]:
    """The text fields an action carries, by name (``keys`` item by item)."""
    texts = [(name, getattr(action, name)) for name in ("text", "app_name", "direction")]
    texts += [(f"keys[{i}]", key) for i, key in enumerate(action.keys or ())]
    return [(name, value) for name, value in texts if isinstance(value, str)]


def act_options(max_new_tokens: int | None = None) -> GenerationOptions:
    """``ACT_OPTIONS`` with another token budget (``None`` keeps the default); shared with the server."""
    if max_new_tokens is None:
        return ACT_OPTIONS
    return replace(ACT_OPTIONS, max_new_tokens=int(max_new_tokens))


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def read_points(prep: PreparedImages, gen: Generation, label: str = "") -> PointResult:
    """Answer text -> points in the original images' pixels (shared by the library and the server).

    An answer that stopped right after its coordinates (``POINT_OPTIONS``) is closed first, with ``label``
    (the query as the model echoes it: ``prompts.echoed_label``) as its text; ``PointResult.text`` is that
    closed answer and ``num_generated_tokens`` what was really decoded.
    """
    started = time.perf_counter()
    text = complete_cut_answer(gen.text, label)
    parsed = parse_points_detailed(text, prep.sizes)
    timings = Timings(prep.decode_ms, gen.preprocess_ms, gen.model_ms, _elapsed_ms(started))
    return PointResult(
        list(parsed.points), text, parsed.reason, prep.sizes, gen.num_generated_tokens, timings
    )


def read_action(prep: PreparedImages, gen: Generation) -> ActResult:
    """Answer text -> action in the screenshot's pixels (shared by the library and the server)."""
    started = time.perf_counter()
    parsed = parse_action_detailed(gen.text, prep.sizes[0])
    timings = Timings(prep.decode_ms, gen.preprocess_ms, gen.model_ms, _elapsed_ms(started))
    return ActResult(parsed.action, gen.text, parsed.reason, prep.sizes[0], gen.num_generated_tokens, timings)


def _as_batch(image: Any, text: str | Sequence[str]) -> tuple[bool, list[Any], list[str]]:
    """Normalise (image, text) into parallel lists and say whether the caller asked for a batch."""
    if isinstance(text, str):
        return False, [image], [text]
    if not isinstance(text, Sequence) or not text:
        raise QueryError("pass a query string, or a non-empty list of query strings for a batch")
    if not isinstance(image, list | tuple) or len(image) != len(text):
        raise QueryError(
            f"a batch of {len(text)} queries needs a list of {len(text)} images (one per query; an item may "
            "itself be a list of images for a multi-image query)"
        )
    return True, list(image), list(text)


def _as_image_list(item: Any) -> list[ImageLike]:
    """One image or a list/tuple of images (a multi-image request)."""
    if isinstance(item, list | tuple):
        if not item:
            raise QueryError("an empty list of images was passed: give at least one image")
        return list(item)
    return [item]


def _broadcast(value: T | Sequence[T] | None, n: int, name: str) -> list[T | None]:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise QueryError(f"{name} has {len(values)} entries for a batch of {n}")
    return values


REMOTE_FAMILIES = ("remote", "openai")


def checked_quantize(quantize: str, family: str, model_id: str) -> str | None:
    """``quantize`` normalised, refused for models whose weights live in another process."""
    from .backends.quantize import check_quantize

    kind = check_quantize(quantize)
    if kind is not None and family in REMOTE_FAMILIES:
        raise ValueError(
            f"quantize={kind!r} cannot apply to {model_id!r}: its weights are held by the server or engine "
            "behind the URL; quantize there (molmo-agent serve --quantize, or the engine's own option)"
        )
    return kind


def load_model(
    name_or_path: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | None = None,
    *,
    limits: ImageLimits | None = None,
    cpu_threads: int | None = None,
    optimize: bool = False,
    quantize: str | None = None,
) -> MolmoModel:
    """Load a Molmo by Hub id or local folder; ``None`` loads the embedded default model.

    ``cpu_threads`` sets torch's CPU thread count for the process (``None`` keeps torch's default).
    ``optimize`` selects the fast path of Molmo2 (SDPA, static KV cache, compiled decode step, vision
    features reused for repeated frames; same greedy outputs); call ``model.warmup()`` before timing it,
    as the first query per shape compiles. Other backends ignore it (logged).
    ``quantize`` (``"int8"``, ``"int4"``) stores the linear weights in 8 or 4 bits through torchao (the
    ``quantize`` extra): at batch 1 decoding reads every weight once per token, so fewer bytes are the
    speed-up on a small GPU, and they let large checkpoints fit one. int8 runs on CPU and CUDA, int4 on
    CUDA only. Not for ``grpc://`` / ``openai://`` models: their server or engine holds the weights.

    Raises:
        ModelNotFoundError: the weights are not on this machine (the message says how to provide them).
        ModelLoadError: the files are there but cannot be loaded by this environment.
        ValueError: an unknown ``quantize``, int4 where it cannot run, or quantize for a remote model.
        MissingExtraError: ``quantize`` without torchao installed (``molmo-agent[quantize]``).
    """
    from .backends.registry import backend_class, resolve

    if cpu_threads is not None:
        from .backends.torch_setup import set_cpu_threads

        set_cpu_threads(cpu_threads)
    resolved = resolve(name_or_path)
    cls = backend_class(resolved.family)
    extra = {}
    if optimize and "optimize" in inspect.signature(cls).parameters:
        extra["optimize"] = True
    elif optimize:
        logging.getLogger(__name__).warning("optimize=True has no effect on %s models", resolved.family)
    if quantize is not None:
        extra["quantize"] = checked_quantize(quantize, resolved.family, resolved.model_id)
    backend = cls(resolved, device=device, dtype=dtype, **extra)
    return MolmoModel(backend, limits=limits)
