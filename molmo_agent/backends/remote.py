"""A Molmo served by ``molmo-agent serve``, used through the same Backend interface as a local one.

``ma.load_model("grpc://gpu-box:50051")`` (or ``grpcs://`` for TLS) returns a normal ``MolmoModel``: prompts
are built and answers parsed on the caller's side exactly as for a local model, and only the network call
(``Generate``: images + prompt -> text) runs on the server, so predictions are identical to running the same
checkpoint locally. Requests of one batch are sent concurrently, so the server's dynamic batching sees them
together (and batches them with other consumers' requests).

URL options: ``?timeout=30`` (seconds per call), ``?ca=/path/ca.pem`` (TLS roots for a private CA),
``?token_env=NAME`` (environment variable holding the bearer token; default ``MOLMO_AGENT_TOKEN``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ..errors import ModelLoadError, ModelNotFoundError
from .base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .registry import ResolvedModel

SCHEMES = ("grpc", "grpcs")
DEFAULT_TIMEOUT_S = 60.0
TOKEN_ENV = "MOLMO_AGENT_TOKEN"
MAX_PARALLEL_REQUESTS = 32


@dataclass(frozen=True)
class RemoteTarget:
    """What a ``grpc://`` URL says: where the server is and how to talk to it."""

    address: str
    tls: bool
    timeout_s: float
    token: str | None
    root_certificates: str | None


def parse_url(url: str) -> RemoteTarget:
    """``grpc[s]://host:port[?timeout=S&ca=PATH&token_env=NAME]`` -> :class:`RemoteTarget`."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or not parts.port:
        raise ModelNotFoundError(
            f"{url!r} is not a server address; expected grpc://HOST:PORT or grpcs://HOST:PORT "
            "(e.g. grpc://127.0.0.1:50051)"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        timeout_s = float(query.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise ModelNotFoundError(f"timeout in {url!r} must be a number of seconds") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    token = os.environ.get(query.get("token_env", TOKEN_ENV), "").strip() or None
    return RemoteTarget(f"{host}:{parts.port}", parts.scheme == "grpcs", timeout_s, token, query.get("ca"))


class RemoteBackend(Backend):
    """Generation on a molmo-agent server through the Python client."""

    def __init__(self, resolved: ResolvedModel, device: str | None = None, dtype: str | None = None) -> None:
        from ..client import Client, ClientError, TlsConfig

        target = parse_url(resolved.location)
        tls = None
        if target.tls:  # system roots unless the URL names a CA file
            tls = TlsConfig(root_certificates=target.root_certificates) if target.root_certificates else True
        self.target = target
        self.client = Client(target.address, token=target.token, tls=tls, timeout_s=target.timeout_s)
        try:
            status = self.client.health(timeout_s=min(10.0, target.timeout_s))
            info = (
                self.client.model_info(timeout_s=min(10.0, target.timeout_s)) if status == "SERVING" else None
            )
        except ClientError as exc:
            self.client.close()
            raise ModelNotFoundError(
                f"no molmo-agent server answers at {target.address} ({exc.code.name}: {exc.details}). "
                "Start `molmo-agent serve` there, and check the address, port, token and TLS setting."
            ) from exc
        if info is None:
            self.client.close()
            raise ModelLoadError(
                f"the server at {target.address} is {status}: its model is still loading or it is shutting "
                "down; try again when its health check says SERVING"
            )
        self.info = ModelInfo(
            model_id=info["model_id"],
            family=info["family"],
            device=f"{info['device']} on {target.address}",
            dtype=info["dtype"],
            num_parameters=int(info["num_parameters"]),
            source=resolved.location,
        )
        self._pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL_REQUESTS, thread_name_prefix="molmo-remote")

    def generate(self, requests: Sequence[Request], options: GenerationOptions) -> list[Generation]:
        """One RPC per request, all in flight together; raises ``ClientError`` (a MolmoAgentError)."""
        futures = [self._pool.submit(self._generate_one, request, options) for request in requests]
        return [future.result() for future in futures]

    def _generate_one(self, request: Request, options: GenerationOptions) -> Generation:
        reply = self.client.generate(
            list(request.images),
            request.prompt,
            max_new_tokens=options.max_new_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            stop_at_answer=options.stop_at_answer,
            stop_at_coords=options.stop_at_coords,  # so the answer is cut, and labelled, as a local one is
        )
        timing = reply.timing
        return Generation(
            text=reply.text,
            num_generated_tokens=reply.num_generated_tokens,
            preprocess_ms=timing["decode_ms"] + timing["preprocess_ms"],
            model_ms=timing["model_ms"],
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.client.close()
