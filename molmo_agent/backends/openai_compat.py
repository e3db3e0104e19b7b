"""A Molmo served by an inference engine's OpenAI-compatible API (vLLM, SGLang, ``transformers serve``).

``ma.load_model("openai://127.0.0.1:8000/v1?model=allenai/Molmo2-8B")`` (``openais://`` for HTTPS) returns a
normal ``MolmoModel``: prompts are built and answers parsed and mapped to pixels on our side, exactly as for
a model in this process; the engine only turns images + prompt text into answer text. The prompt goes as one
user message, the images first and the text after, which the engine's chat template renders as the local
Molmo2 backend does (``molmo2.chat_messages``). A batch becomes that many concurrent requests, so the
engine's continuous batching packs them.

URL options (all optional): ``model=`` the served model name (default: the only one the engine serves),
``family=molmo2|molmo1`` when the name does not say, ``concurrency=8`` requests in flight, ``timeout=60``
seconds per call (retries included), ``retries=4`` tries on 429/502/503/connection reset,
``api_key_env=OPENAI_API_KEY`` the variable holding the API key, ``ca=ca.pem`` (``openais://``: trust
this CA instead of the system's), ``images=auto|png|jpeg`` (see ``image_urls``), ``stop=auto|on|off``
whether point queries send stop sequences (``auto``: yes, dropped for good if the engine fails on them).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import EngineError, EngineRequestError, ModelLoadError, ModelNotFoundError
from .base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .engine_answers import cut_like_local, stop_sequences
from .engine_http import EngineHttp, RetryPolicy, error_message, ssl_context
from .image_urls import FORMATS, data_url
from .registry import (
    DEFAULT_MODEL_DIR,
    DEFAULT_MODEL_NAME,
    KNOWN_MODELS,
    ResolvedModel,
    cached_snapshot,
    family_of_dir,
)

logger = logging.getLogger(__name__)

SCHEMES = ("openai", "openais")
FAMILIES = ("molmo2", "molmo1")
OPTIONS = ("model", "family", "concurrency", "timeout", "retries", "api_key_env", "ca", "images", "stop")
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 60.0
API_KEY_ENV = "OPENAI_API_KEY"


@dataclass(frozen=True)
class EngineTarget:
    """What an ``openai://`` URL says: where the engine is, which model, and how to talk to it."""

    base_url: str
    model: str | None
    family: str | None
    concurrency: int
    timeout_s: float
    retries: int
    api_key_env: str
    ca_file: str | None
    image_format: str
    stop: str


def parse_url(url: str) -> EngineTarget:
    """``openai[s]://host:port/path?model=NAME&...`` -> :class:`EngineTarget` (checks only, no I/O)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or not parts.port:
        raise ModelNotFoundError(
            f"{url!r} is not an engine address; expected openai://HOST:PORT/PATH?model=NAME (HTTP) or "
            "openais://... (HTTPS), e.g. openai://127.0.0.1:8000/v1?model=allenai/Molmo2-8B"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise ModelNotFoundError(
            f"unknown option(s) {', '.join(unknown)} in {url!r}; known: {', '.join(OPTIONS)}"
        )
    family = query.get("family")
    if family is not None and family not in FAMILIES:
        raise ModelNotFoundError(f"family in {url!r} must be one of {', '.join(FAMILIES)}, got {family!r}")
    image_format = query.get("images", "auto")
    if image_format not in FORMATS:
        raise ModelNotFoundError(f"images in {url!r} must be one of {', '.join(FORMATS)}")
    stop = query.get("stop", "auto")
    if stop not in ("auto", "on", "off"):
        raise ModelNotFoundError(f"stop in {url!r} must be auto, on or off")
    concurrency = _number(query, "concurrency", DEFAULT_CONCURRENCY, int, url)
    timeout_s = _number(query, "timeout", DEFAULT_TIMEOUT_S, float, url)
    retries = _number(query, "retries", RetryPolicy().attempts, int, url)
    if concurrency < 1 or timeout_s <= 0 or retries < 1:
        raise ModelNotFoundError(f"concurrency and retries must be >= 1 and timeout > 0 in {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = "https" if parts.scheme == "openais" else "http"
    return EngineTarget(
        base_url=f"{scheme}://{host}:{parts.port}{parts.path.rstrip('/')}",
        model=query.get("model") or None,
        family=family,
        concurrency=concurrency,
        timeout_s=timeout_s,
        retries=retries,
        api_key_env=query.get("api_key_env", API_KEY_ENV),
        ca_file=query.get("ca"),
        image_format=image_format,
        stop=stop,
    )


def _number(query: dict[str, str], key: str, default, kind, url: str):
    try:
        return kind(query.get(key, default))
    except ValueError:
        raise ModelNotFoundError(f"{key} in {url!r} must be a number") from None


def family_of_name(name: str) -> str | None:
    """Molmo v1 or Molmo2 from a served model's name: a checkpoint folder on this machine, a known Hub id
    (or its last part, a common served name), or a cached Hub snapshot; else ``None``."""
    try:
        folder = Path(name).expanduser()
        if folder.is_dir():
            return family_of_dir(folder)
        if name in KNOWN_MODELS:
            return KNOWN_MODELS[name].family
        tails = {model_id.rsplit("/", 1)[-1].lower(): m.family for model_id, m in KNOWN_MODELS.items()}
        if name.count("/") <= 1 and name.rsplit("/", 1)[-1].lower() in tails:
            return tails[name.rsplit("/", 1)[-1].lower()]
        cached = cached_snapshot(name)
        return family_of_dir(cached) if cached is not None else None
    except (ModelNotFoundError, ModelLoadError, OSError):
        return None


def display_id(name: str) -> str:
    """The id we report: the embedded default's own name when the engine serves its folder."""
    try:
        if Path(name).expanduser().resolve() == DEFAULT_MODEL_DIR:
            return DEFAULT_MODEL_NAME
    except OSError:
        pass
    return name


class OpenAICompatBackend(Backend):
    """Generation on an OpenAI-compatible engine, one HTTP request per prompt, several in flight."""

    def __init__(self, resolved: ResolvedModel, device: str | None = None, dtype: str | None = None) -> None:
        target = parse_url(resolved.location)
        api_key = os.environ.get(target.api_key_env, "").strip() or None
        verify = ssl_context(target.ca_file) if target.base_url.startswith("https") else True
        self.target = target
        self.http = EngineHttp(
            target.base_url,
            api_key=api_key,
            timeout_s=target.timeout_s,
            max_connections=target.concurrency,
            verify=verify,
            retry=RetryPolicy(attempts=target.retries),
        )
        try:
            self.model_name, family = self._identify()
        except BaseException:
            self.http.close()
            raise
        self.http.model = self.model_name
        self.send_stops = target.stop != "off"
        self.info = ModelInfo(
            model_id=display_id(self.model_name),
            family=family,
            device=f"engine at {target.base_url}",
            dtype="engine's",
            num_parameters=0,
            source=resolved.location,
        )
        self._pool = ThreadPoolExecutor(max_workers=target.concurrency, thread_name_prefix="molmo-engine")

    def _identify(self) -> tuple[str, str]:
        """The served model's name and family: checks the engine is there, the key works, the model served."""
        target = self.target
        status, listing = self.http.get("models", timeout_s=min(10.0, target.timeout_s))
        if status >= 400 and status != 404:
            raise self.http.error_for(status, error_message(listing, ""))
        entries = listing.get("data", []) if isinstance(listing, dict) else []
        served = {str(e.get("id")): str(e.get("root") or "") for e in entries if isinstance(e, dict)}
        self.http.served = tuple(served)
        name = target.model
        if name is None:
            if len(served) != 1:
                raise ModelNotFoundError(
                    f"say which model to use: add ?model=NAME to the URL; the engine at {target.base_url} "
                    f"serves {', '.join(served) or 'no model it lists'}"
                )
            name = next(iter(served))
        elif served and name not in served:
            raise ModelNotFoundError(
                f"the engine at {target.base_url} does not serve {name!r}; it serves: {', '.join(served)}. "
                "Put one of those in ?model= (or start the engine with this model)"
            )
        family = target.family or family_of_name(name) or family_of_name(served.get(name, "") or name)
        if family is None:
            raise ModelLoadError(
                f"cannot tell whether {name!r} (served at {target.base_url}) is Molmo v1 or Molmo2, which "
                "decides the prompts and the answer format: add &family=molmo2 (or &family=molmo1) to the URL"
            )
        return name, family

    def generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        """One chat completion per request, up to ``concurrency`` in flight; raises :class:`EngineError`."""
        futures = [self._pool.submit(self._generate_one, request, options) for request in requests]
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def _generate_one(self, request: Request, options: GenerationOptions) -> Generation:
        started = time.perf_counter()
        content: list[dict] = [
            {"type": "image_url", "image_url": {"url": data_url(image, self.target.image_format)}}
            for image in request.images
        ]
        content.append({"type": "text", "text": request.prompt})
        body: dict = {
            "model": self.model_name,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
        }
        if options.temperature > 0:
            body["top_p"] = options.top_p
        stops = stop_sequences(self.family, options) if self.send_stops else ()
        encoded = time.perf_counter()
        reply = self._complete(body, stops)
        answered = time.perf_counter()
        choice = (reply.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
        text = cut_like_local(
            text,
            options,
            stops=stops if self.send_stops else (),
            finish_reason=choice.get("finish_reason"),
            stop_reason=choice.get("stop_reason"),
            reports_stop_reason="stop_reason" in choice,
        )
        usage = reply.get("usage") or {}
        return Generation(
            text=text,
            num_generated_tokens=int(usage.get("completion_tokens") or 0),
            preprocess_ms=(encoded - started) * 1000,
            model_ms=(answered - encoded) * 1000,
        )

    def _complete(self, body: dict, stops: tuple[str, ...]) -> dict:
        """POST the completion; in ``stop=auto`` mode an engine that fails on stop sequences (HTTP 500)
        is asked again without them, and never sent them again (the answer is then cut on our side)."""
        if not stops:
            return self.http.post("chat/completions", body)
        try:
            return self.http.post("chat/completions", {**body, "stop": list(stops)})
        except EngineError as exc:
            if self.target.stop != "auto" or isinstance(exc, EngineRequestError) or exc.status != 500:
                raise
            logger.warning(
                "the engine at %s failed on stop sequences (%s); sending none from now on",
                self.target.base_url,
                exc,
            )
            self.send_stops = False
            return self.http.post("chat/completions", body)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.http.close()
