"""Server bootstrap: create, register, bind, start, wait, and stop with a grace period.

``serve`` is the asyncio entry point (``molmo-agent serve``); ``start_in_thread`` runs the same server on
its own event loop in a background thread, which tests, benchmarks and embedding applications use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..images import ImageLimits
from ..model import MolmoModel, load_model
from ..v1 import service_pb2
from .auth import BearerTokenInterceptor
from .batcher import Batcher
from .config import ConfigError, ServerConfig
from .servicer import MolmoAgentServicer, method_handlers

logger = logging.getLogger(__name__)

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["MolmoAgent"].full_name
DRAIN_POLL_S = 0.02


@dataclass
class RunningServer:
    """Handles of a started server."""

    server: grpc.aio.Server
    port: int
    servicer: MolmoAgentServicer
    batcher: Batcher
    health: health.aio.HealthServicer

    async def stop(self, grace_s: float | None) -> None:
        """Health says NOT_SERVING and new model requests get UNAVAILABLE while in-flight ones finish within
        ``grace_s``; then the server stops accepting and the batcher stops.

        Connections stay open while draining, so a health check on a new connection answers NOT_SERVING
        (as documented) instead of failing with UNAVAILABLE, and a load balancer takes the server out.
        """
        await self.health.enter_graceful_shutdown()
        self.servicer.drain()
        started = time.monotonic()
        if grace_s:
            while self.servicer.in_flight > 0 and time.monotonic() - started < grace_s:
                await asyncio.sleep(DRAIN_POLL_S)
        remaining = None if grace_s is None else max(grace_s - (time.monotonic() - started), 0.0)
        await self.server.stop(remaining)
        await self.batcher.stop()


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert is None:
        return None
    key, cert = config.tls_key.read_bytes(), config.tls_cert.read_bytes()
    client_ca = config.tls_client_ca.read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _warm_up(model: MolmoModel) -> None:
    """One real request before SERVING, so the first client does not pay for lazy initialisation
    (nor, with ``optimize``, for compiling the decode step)."""
    model.warmup()


class BindError(ConfigError, OSError):
    """The address cannot be bound (in use, or not an address of this machine)."""


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    """Bind the port; a busy or foreign address is a :class:`BindError` whose message says what to do."""
    credentials = _credentials(config)
    try:
        port = (
            server.add_secure_port(config.address, credentials)
            if credentials
            else server.add_insecure_port(config.address)
        )
    except RuntimeError:  # grpc's aio server raises RuntimeError("Failed to bind ...")
        port = 0
    if port == 0:
        raise BindError(
            f"could not bind {config.address}: the port is in use (is another server running?) or the host "
            "is not an address of this machine; choose another --port or --host"
        )
    return port


async def start(config: ServerConfig, model: MolmoModel | None = None) -> RunningServer:
    """Load (unless given) and warm the model, then start serving; health says SERVING only after that."""
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    interceptors = [BearerTokenInterceptor(config.token)] if config.token else []
    server = grpc.aio.server(options=options, interceptors=interceptors)
    servicer = MolmoAgentServicer(config)
    server.add_generic_rpc_handlers((method_handlers(servicer),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
    port = _bind(server, config)
    await server.start()  # health answers NOT_SERVING while the model loads
    if model is None:
        model = await asyncio.to_thread(
            load_model,
            config.model,
            config.device,
            config.dtype,
            limits=ImageLimits(
                max_pixels=config.max_image_pixels, max_total_pixels=config.max_request_pixels
            ),
            cpu_threads=config.cpu_threads,
            quantize=config.quantize,
        )
    if config.warmup:
        await asyncio.to_thread(_warm_up, model)
    batcher = Batcher(model.backend, config.max_batch_size, config.max_batch_wait_ms / 1000, config.max_queue)
    batcher.start()
    servicer.attach(model, batcher)
    if config.warmup:
        await servicer.warm_up()  # the server's own decode, batching and answer path, once
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("serving %s on %s (port %d)", model.info.model_id, config.host, port)
    return RunningServer(server, port, servicer, batcher, health_servicer)


async def serve(config: ServerConfig, model: MolmoModel | None = None) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully.

    A port that cannot be bound ends the program with the reason (``SystemExit``), not a traceback.
    """
    try:
        running = await start(config, model)
    except BindError as error:
        raise SystemExit(f"error: {error}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down: finishing in-flight requests (grace %.1f s)", config.grace_s)
        await running.stop(config.grace_s)


class BackgroundServer:
    """A server on its own event loop in a daemon thread (tests, benchmarks, embedding)."""

    def __init__(self, config: ServerConfig, model: MolmoModel | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="molmo-server", daemon=True)
        self._thread.start()
        self.running: RunningServer = self._call(start(config, model))
        self.port = self.running.port
        self.config = config

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace_s: float | None = 0.5) -> None:
        if self._loop.is_closed():
            return
        self._call(self.running.stop(grace_s))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
