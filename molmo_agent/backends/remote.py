"""A Molmo served by ``molmo-agent serve``, used through the same Backend interface as a local one.

``ma.load_model("grpc://gpu-box:50051")`` (or ``grpcs://`` for TLS) returns a normal ``MolmoModel``: prompts
are built and answers parsed on the caller's side exactly as for a local model, and only the network call
(``Generate``: images + prompt -> text) runs on the server, so predictions are identical to running the same
checkpoint locally. Requests of one batch are sent concurrently, so the server's dynamic batching sees them
together (and batches them with other consumers' requests).

Several servers serving the same model: ``grpc://h1:50051,h2:50051`` (a fixed list; host names are resolved
when the model loads) or ``grpc+dns://pool:50051`` (every address DNS gives for ``pool``, re-resolved by
gRPC). gRPC's round-robin spreads the calls over the servers that are up and whose health says SERVING; a
call that meets a server going away is sent again to another (see :mod:`molmo_agent.balancing`).

URL options: ``?timeout=30`` (seconds per call), ``?ca=/path/ca.pem`` (TLS roots for a private CA),
``?server_name=NAME`` (the name TLS checks the certificates against; a list's default is its first host),
``?token_env=NAME`` (environment variable holding the bearer token; default ``MOLMO_AGENT_TOKEN``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ..balancing import TargetError, host_port
from ..errors import ModelLoadError, ModelNotFoundError
from .base import Backend, Generation, GenerationOptions, ModelInfo, Request
from .registry import ResolvedModel

SCHEMES = {"grpc": False, "grpcs": True, "grpc+dns": False, "grpcs+dns": True}
"""URL scheme -> TLS; ``+dns`` names a DNS name whose every address is a server."""
URL_FORMS = "grpc://HOST:PORT, grpc://HOST:PORT,HOST:PORT,... or grpc+dns://NAME:PORT (grpcs for TLS)"
DEFAULT_TIMEOUT_S = 60.0
TOKEN_ENV = "MOLMO_AGENT_TOKEN"
MAX_PARALLEL_REQUESTS = 32


@dataclass(frozen=True)
class RemoteTarget:
    """What a ``grpc://`` URL says: where the server is and how to talk to it."""

    address: str
    """What :class:`~molmo_agent.client.Client` connects to: ``host:port``, ``h1:p1,h2:p2`` or
    ``dns:///name:port``."""
    tls: bool
    timeout_s: float
    token: str | None
    root_certificates: str | None
    server_name: str | None = None


def parse_url(url: str) -> RemoteTarget:
    """``grpc[s][+dns]://ADDRESSES[?timeout=S&ca=PATH&server_name=NAME&token_env=NAME]`` -> target."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ModelNotFoundError(f"{url!r} is not a server address; expected {URL_FORMS}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        timeout_s = float(query.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise ModelNotFoundError(f"timeout in {url!r} must be a number of seconds") from None
    token = os.environ.get(query.get("token_env", TOKEN_ENV), "").strip() or None
    address = _address(url, parts.netloc, dns=parts.scheme.endswith("+dns"))
    return RemoteTarget(
        address, SCHEMES[parts.scheme], timeout_s, token, query.get("ca"), query.get("server_name")
    )


def _address(url: str, netloc: str, *, dns: bool) -> str:
    """The client's target for a URL's ``host:port`` list (checked here, so a typo fails before any I/O)."""
    entries = [entry.strip() for entry in netloc.split(",")]
    try:
        endpoints = [host_port(entry) for entry in entries]
    except TargetError as exc:
        raise ModelNotFoundError(f"{url!r}: {exc}; expected {URL_FORMS}") from None
    if dns and len(endpoints) > 1:
        raise ModelNotFoundError(f"{url!r}: grpc+dns:// takes one DNS name (all its addresses are used)")
    if dns:
        return f"dns:///{entries[0]}"
    return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in endpoints)


class RemoteBackend(Backend):
    """Generation on a molmo-agent server through the Python client."""

    def __init__(self, resolved: ResolvedModel, device: str | None = None, dtype: str | None = None) -> None:
        from ..client import Client, ClientError, TlsConfig

        target = parse_url(resolved.location)
        tls = None
        if target.tls:  # system roots unless the URL names a CA file
            custom = target.root_certificates or target.server_name
            tls = TlsConfig(target.root_certificates, server_name=target.server_name) if custom else True
        self.target = target
        try:
            self.client = Client(target.address, token=target.token, tls=tls, timeout_s=target.timeout_s)
        except TargetError as exc:  # a host of a list that does not resolve
            raise ModelNotFoundError(f"{resolved.location!r}: {exc}") from None
        try:
            status = self.client.health(timeout_s=min(10.0, target.timeout_s))
            info = (
                self.client.model_info(timeout_s=min(10.0, target.timeout_s)) if status == "SERVING" else None
            )
        except ClientError as exc:
            self.client.close()
            pool = " (or none of them is SERVING yet)" if self.client.server.balanced else ""
            raise ModelNotFoundError(
                f"no molmo-agent server answers at {target.address}{pool} ({exc.code.name}: {exc.details}). "
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
