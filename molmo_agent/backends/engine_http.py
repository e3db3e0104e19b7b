"""HTTP to an OpenAI-compatible engine: pooled connections, a deadline per call, retries, typed errors.

Only transient trouble is retried (429 rate limits, 502/503 while an engine restarts or sheds load, a
connection reset mid-request), with exponential backoff that honours ``Retry-After``; everything else is
the caller's to fix and becomes an :class:`~molmo_agent.errors.EngineError` whose message says what to do.
The deadline covers the whole call, retries included, so a caller's time budget holds.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EngineAuthError, EngineError, EngineRequestError, EngineUnavailableError

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503})
CONTEXT_HINTS = ("context length", "context window", "maximum context", "max-model-len", "max_model_len")
CONTEXT_HINTS_2 = ("too long", "prompt has", "exceeds", "longer than")
IMAGE_HINTS = ("image", "multimodal", "multi-modal", "vision")
MODEL_HINTS = ("does not exist", "not served", "not found", "pinned", "unknown model")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried."""

    attempts: int = 4
    """Tries in all (1: no retry)."""
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before try ``attempt + 1``: the server's ``Retry-After`` if it sent one, else backoff."""
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        base = min(self.backoff_s * 2**attempt, self.max_backoff_s)
        return base * (0.5 + random.random() / 2)


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trusted roots (or only ``ca_file``'s): what ``openais://`` verifies the engine with."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


class EngineHttp:
    """One engine's base URL (``http(s)://host:port/v1``) with a connection pool shared by threads."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_s: float,
        max_connections: int,
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise EngineError(
                "openai:// models need httpx: pip install 'molmo-agent[engines]' (or pip install httpx)"
            ) from None
        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.model: str | None = None
        self.served: Sequence[str] = ()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(headers=headers, limits=limits, verify=verify)

    def get(self, path: str, *, timeout_s: float | None = None) -> tuple[int, Any]:
        """``GET base/path`` -> (status, JSON or ``None``) for any status; raises only when unreachable."""
        response = self._send("GET", path, None, timeout_s or self.timeout_s, retry_statuses=frozenset())
        return response.status_code, _json_or_none(response)

    def post(self, path: str, body: dict) -> dict:
        """``POST base/path`` with retries; the JSON reply, or an :class:`EngineError` saying what failed."""
        response = self._send("POST", path, body, self.timeout_s, retry_statuses=RETRY_STATUSES)
        payload = _json_or_none(response)
        if response.status_code >= 400:
            raise self.error_for(response.status_code, error_message(payload, response.text))
        if not isinstance(payload, dict):
            raise EngineError(
                f"the engine at {self.base_url} answered {path} with something that is not JSON"
            )
        return payload

    def _send(self, method: str, path: str, body: dict | None, timeout_s: float, *, retry_statuses):
        httpx = self._httpx
        url = f"{self.base_url}/{path.lstrip('/')}"
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(timeout_s)
            try:
                response = self._client.request(method, url, json=body, timeout=remaining)
            except httpx.ConnectError as exc:
                raise EngineUnavailableError(
                    f"no OpenAI-compatible server answers at {self.base_url} ({exc}). Start the engine there "
                    "(vllm serve / python -m sglang.launch_server / transformers serve) and check the host, "
                    "port, path (usually /v1) and scheme (openais:// for HTTPS)"
                ) from exc
            except httpx.TimeoutException as exc:
                raise self._timed_out(timeout_s) from exc
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if attempt + 1 >= self.retry.attempts:
                    raise EngineUnavailableError(
                        f"the engine at {self.base_url} dropped the connection {attempt + 1} times ({exc})"
                    ) from exc
                status, retry_after = 0, None
            else:
                if response.status_code not in retry_statuses or attempt + 1 >= self.retry.attempts:
                    if response.status_code in retry_statuses:
                        raise self._exhausted(response, attempt + 1)
                    return response
                status, retry_after = response.status_code, response.headers.get("retry-after")
            delay = self.retry.delay(attempt, retry_after)
            if time.monotonic() + delay >= deadline:
                raise self._timed_out(timeout_s)
            logger.info(
                "engine %s: %s, retry %d in %.2f s", self.base_url, status or "reset", attempt + 1, delay
            )
            time.sleep(delay)
            attempt += 1

    def _timed_out(self, timeout_s: float) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"the engine at {self.base_url} did not answer within {timeout_s:g} s: it may be overloaded or "
            "still loading; raise the deadline with ?timeout=SECONDS in the model URL"
        )

    def _exhausted(self, response, attempts: int) -> EngineUnavailableError:
        message = error_message(_json_or_none(response), response.text)
        what = "rate-limited the requests" if response.status_code == 429 else "was unavailable"
        return EngineUnavailableError(
            f"the engine at {self.base_url} {what} (HTTP {response.status_code}: {message}) through "
            f"{attempts} attempts; lower the concurrency (?concurrency=N) or add engine capacity",
            response.status_code,
        )

    def error_for(self, status: int, message: str) -> EngineError:
        """The typed error for a refused request, with what to do about it."""
        lowered = message.lower()
        if status in (401, 403):
            return EngineAuthError(
                f"the engine at {self.base_url} refused the API key (HTTP {status}: {message}); set "
                "$OPENAI_API_KEY (or the variable named by ?api_key_env=NAME) to a key it accepts",
                status,
            )
        if status in (400, 404, 413, 422):
            if any(h in lowered for h in CONTEXT_HINTS) or (
                "token" in lowered and any(h in lowered for h in CONTEXT_HINTS_2)
            ):
                return EngineRequestError(
                    f"the prompt (image tokens included) does not fit the engine's context ({message}); "
                    "raise the engine's --max-model-len or send smaller images",
                    status,
                )
            if self.model and any(h in lowered for h in MODEL_HINTS) and "model" in lowered:
                return EngineRequestError(
                    f"the engine at {self.base_url} does not serve {self.model!r} ({message}); it serves: "
                    f"{', '.join(self.served) or 'nothing it lists'}. Put one of those in ?model=",
                    status,
                )
            if any(h in lowered for h in IMAGE_HINTS):
                return EngineRequestError(
                    f"the engine at {self.base_url} rejected the images ({message}); serve a Molmo vision "
                    "checkpoint and allow enough images per prompt (vLLM: --limit-mm-per-prompt)",
                    status,
                )
            if status == 404:
                return EngineRequestError(
                    f"no chat-completions API at {self.base_url} (HTTP 404: {message}); check the path in "
                    "the model URL (usually /v1)",
                    status,
                )
            return EngineRequestError(f"the engine at {self.base_url} refused the request: {message}", status)
        return EngineError(f"the engine at {self.base_url} failed (HTTP {status}): {message}", status)

    def close(self) -> None:
        self._client.close()


def _json_or_none(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_message(payload: Any, text: str) -> str:
    """The human part of an error reply, whichever engine's shape it has (OpenAI/vLLM's ``error.message``,
    older vLLM's ``message``, FastAPI's ``detail``)."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:
                return "; ".join(
                    str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value
                )
    return (text or "").strip()[:500] or "no details"
